// ServeViewTicket (view_request.h): the stream of a view ticket. Apart from the parsing in
// view_request.cc, which needs no engine (the fuzz harnesses build it alone).
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cache/engine.h"
#include "server/entry_stream.h"
#include "server/result_access.h"
#include "server/tenant_scope.h"
#include "server/view_request.h"

namespace quiver {

using nlohmann::json;

namespace {

// A tenant's view names a key of its own namespace, or a query result it may read
// (server/result_access.h).
arrow::Status ScopeViewKey(Engine* engine, const Identity& who, const TenantScope& scope,
                           std::string* key) {
  if (!scope.scoped()) return arrow::Status::OK();
  if (key->rfind(kQueryKeyPrefix, 0) == 0 || IsQueryKey(kQueryKeyPrefix + *key)) {
    return CheckResultAccess(engine, who, scope, *key);
  }
  ARROW_ASSIGN_OR_RAISE(auto stored, scope.Key(*key));
  *key = stored.ToString();
  return arrow::Status::OK();
}

// The view's metadata as the caller addresses keys.
std::string ShowSourceKey(const TenantScope& scope, json meta) {
  if (scope.scoped()) {
    meta["source"]["key"] = scope.ShowKey(meta["source"]["key"].get<std::string>());
  }
  return meta.dump();
}

}  // namespace

arrow::Result<std::unique_ptr<arrow::flight::FlightDataStream>> ServeViewTicket(
    Engine* engine, const std::string& ticket, const Identity& who) {
  const TenantScope scope = TenantScope::Of(who);
  ARROW_ASSIGN_OR_RAISE(auto request, ParseViewRequest(ticket));
  ARROW_RETURN_NOT_OK(ScopeViewKey(engine, who, scope, &request.key));
  if (request.view.empty() && request.encoding == Encoding::kArrowStream) {
    // Nothing to derive: the entry itself, as stored.
    ARROW_ASSIGN_OR_RAISE(auto parts,
                          engine->views()->OpenSourceParts(request.key, request.version));
    ViewResult plain;
    plain.source = parts.back().meta;
    plain.entry = parts.back();
    plain.cached_hit = true;
    ObjectRead read{std::move(parts), 0};
    ARROW_ASSIGN_OR_RAISE(auto streams, OpenParts(read));
    json meta = json::parse(ViewResultJson(plain));
    meta["key"] = scope.ShowKey(meta["source"]["key"].get<std::string>());
    return std::make_unique<EntryStream>(std::move(streams), ShowSourceKey(scope, meta));
  }
  ARROW_ASSIGN_OR_RAISE(auto result, engine->views()->Serve(request));
  spdlog::debug("view of {}@{}: {} ({} ms)", result.source.key, result.source.version,
                result.cached_hit ? "hit" : "derived", result.derive_ms);
  ARROW_ASSIGN_OR_RAISE(auto stored, StoredStream::Open(result.entry.file));
  return std::make_unique<EntryStream>(std::move(stored),
                                       ShowSourceKey(scope, json::parse(ViewResultJson(result))));
}

}  // namespace quiver
