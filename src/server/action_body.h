// The bodies of the management actions (docs/management.md): parsed and checked here, apart
// from running them (server/actions.cc), so that every body a client can send is parsed by
// code that touches no cache and can be fuzzed on its own (fuzz/fuzz_actions.cc).
//
// A body is a JSON object, or for the single-argument actions (delete, delete-prefix,
// invalidate, invalidate-tag) the bare argument. Errors are Invalid and name the field.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <arrow/result.h>

#include "cache/runtime_settings.h"

namespace quiver {

/// delete: {"key": K} or K.  delete-prefix: {"prefix": P} or P.  invalidate-tag: {"tag": T}
/// or T (not empty).  The argument as sent; keys are checked where they are mapped.
arrow::Result<std::string> ParseKeyBody(const std::string& body);
arrow::Result<std::string> ParsePrefixBody(const std::string& body);
arrow::Result<std::string> ParseTagBody(const std::string& body);

/// entries: {"prefix": P}, optional ("" lists all).
arrow::Result<std::string> ParseEntriesBody(const std::string& body);

/// shrink: {"one": true} or {"below_bytes": N or "64MiB", "dry_run": bool}.
struct ShrinkBody {
  std::optional<int64_t> below_bytes;  ///< empty: evict the single lowest-scored key
  bool dry_run = false;
};
arrow::Result<ShrinkBody> ParseShrinkBody(const std::string& body);

/// invalidate: {"key": K, "cascade": bool} or K. K is an object key or a query result
/// ("@q/<hex>"), checked here.
struct InvalidateBody {
  std::string key;
  bool cascade = true;
};
arrow::Result<InvalidateBody> ParseInvalidateBody(const std::string& body);

/// config-set: any subset of {"half_life": n, "cache_size": bytes, "memory_size": bytes};
/// ranges are checked (RuntimeSettings::Validate), unknown names refused.
arrow::Result<RuntimeSettings> ParseConfigSetBody(const std::string& body);

/// \brief Parse the body of action `type` with the parser above that it uses (a type that
/// takes no body, or an unknown one: OK). For the fuzzer, which feeds every type each input.
arrow::Status ParseActionBody(const std::string& type, const std::string& body);

}  // namespace quiver
