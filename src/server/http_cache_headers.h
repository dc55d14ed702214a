// HTTP validators and freshness for entries (docs/http.md, "Caching"): the ETag of an entry
// version, Last-Modified, Cache-Control / Expires from its TTL, and the conditional-request
// checks (If-None-Match -> 304, If-Match -> compare-and-set).
//
// The ETag is "VERSION.CREATED_MS": a version number alone would repeat after a key is
// deleted and written again (versions start at 1 again), and a client could then be told
// "not modified" about different data. If-Match also takes the bare "VERSION" (the issue's
// compare-and-set form), since the put itself checks the version atomically.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>

#include <arrow/result.h>
#include <httplib.h>

#include "index/entry.h"

namespace quiver {

struct EntityTag {
  uint64_t version = 0;
  std::optional<int64_t> created_ms;
};

/// \brief The ETag of `meta`, quoted.
std::string EntityTagOf(const EntryMeta& meta);
/// \brief Parse one entity tag ("3", "3.1700000000000", W/ allowed); the error names it.
arrow::Result<EntityTag> ParseEntityTag(const std::string& text);
/// \brief Set ETag, Last-Modified, Cache-Control and (with a TTL) Expires for `meta`.
void SetCacheHeaders(const EntryMeta& meta, int64_t now_ms, httplib::Response* res);
/// \brief True if `req`'s If-None-Match names `meta`'s ETag (or is "*").
bool NoneMatch(const httplib::Request& req, const EntryMeta& meta);
/// \brief An RFC 9110 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
std::string HttpDate(int64_t unix_ms);

}  // namespace quiver
