// HttpApi: queries -- POST /v1/query with the Flight query command's JSON (docs/http.md,
// "Queries"). A hit streams the stored result; a miss streams the fill as the query runs
// (joining it if one is running), exactly as Flight's DoGet does.

#include <nlohmann/json.hpp>

#include "server/http_api.h"
#include "server/http_auth.h"
#include "server/http_body.h"
#include "server/http_cache_headers.h"
#include "server/http_views.h"
#include "server/query_command.h"
#include "server/result_access.h"
#include "server/tenant_scope.h"

namespace quiver {

using nlohmann::json;

namespace {

const char* KindName(QueryResponse::Kind kind) {
  switch (kind) {
    case QueryResponse::Kind::kHit:
      return "hit";
    case QueryResponse::Kind::kMiss:
      return "miss";
    case QueryResponse::Kind::kBypass:
      return "bypass";
  }
  return "miss";
}

// The response metadata Flight sends on the first batch, as headers.
void SetQueryHeaders(const QueryResponse& r, httplib::Response* res) {
  res->set_header("X-Quiver-Cache", KindName(r.kind));
  res->set_header("X-Quiver-Key", r.key);
  if (r.kind == QueryResponse::Kind::kMiss) {
    res->set_header("X-Quiver-Joined", r.joined ? "true" : "false");
  }
  if (r.kind != QueryResponse::Kind::kBypass) {
    res->set_header("X-Quiver-Created-Ms", std::to_string(r.created_ms));
    res->set_header("X-Quiver-Expires-Ms", std::to_string(r.expires_ms));
  }
  if (r.exec_ms >= 0) res->set_header("X-Quiver-Exec-Ms", std::to_string(r.exec_ms));
  if (r.stale) res->set_header("X-Quiver-Stale", "true");
  if (r.refreshing) res->set_header("X-Quiver-Refreshing", "true");
  if (!r.node.empty()) res->set_header("X-Quiver-Node", r.node);
  if (!r.reason.empty()) res->set_header("X-Quiver-Reason", r.reason);
}

}  // namespace

// A view of a query's result is derived from the cached result: a miss is read to its end
// and waited for until it is stored, then viewed like a hit.
arrow::Status HttpApi::ServeQueryView(const httplib::Request& req, QueryResponse r,
                                      ViewRequest view, httplib::Response* res) {
  if (r.kind == QueryResponse::Kind::kBypass) {
    r.fill->Detach(r.reader);
    return arrow::Status::Invalid("a view (columns, filter, sort, offset, limit, format) needs "
                                  "a cached query result, and this query bypasses the cache: ",
                                  r.reason);
  }
  if (!r.hit) {
    auto drained = [&]() -> arrow::Status {
      auto body = FillPayloads(r.fill, r.reader);
      ARROW_RETURN_NOT_OK(body->Schema().status());
      while (true) {
        ARROW_ASSIGN_OR_RAISE(auto next, body->Next());
        if (!next) return arrow::Status::OK();
      }
    }();
    ARROW_RETURN_NOT_OK(drained);
    r.fill->WaitSettled();
  }
  view.key = r.key;
  auto served = engine_->views()->Serve(view);
  if (!served.ok() && served.status().IsKeyError() && r.fill) {
    const std::string why = r.fill->not_cached_reason();
    return arrow::Status::Invalid("the query's result was not cached (",
                                  why.empty() ? std::string("not admitted") : why,
                                  "), and a view needs a cached result");
  }
  ARROW_RETURN_NOT_OK(served.status());
  return SendView(req, *served, engine_->options().clock->NowMillis(), res);
}

void HttpApi::Query(const httplib::Request& req, httplib::Response& res) {
  auto st = [&]() -> arrow::Status {
    // A view of the result (?columns=&filter=&...&format=, or Accept): checked before the
    // query runs, so that a bad view costs nothing.
    ARROW_ASSIGN_OR_RAISE(auto view, HttpViewRequest(req, std::string(64, '0'), {}));
    if (view && view->version) {
      return arrow::Status::Invalid("'version' does not apply to a query result");
    }
    if (req.body.empty()) {
      return arrow::Status::Invalid("POST /v1/query needs a JSON body such as "
                                    "{\"source\": \"main\", \"sql\": \"SELECT 1\"}");
    }
    const char* what = CommandName(req.body);
    auto planned = PlanCommand(engine_, req.body, HttpCaller());
    if (!planned.ok()) {
      return arrow::Status(planned.status().code(), std::string(what) + ": " +
                                                        planned.status().message(),
                           planned.status().detail());
    }
    ARROW_ASSIGN_OR_RAISE(auto r, ExecuteCommand(engine_, *planned));
    SetQueryHeaders(r, &res);
    if (view) return ServeQueryView(req, std::move(r), std::move(*view), &res);
    if (r.hit) {
      SetCacheHeaders(r.hit->meta, engine_->options().clock->NowMillis(), &res);
      if (r.stale || planned->stale_s > 0) {
        // Stale: expired, a refresh is under way. Else RFC 5861: downstream caches may serve
        // it this long past expiry while they revalidate.
        std::string control = r.stale ? "max-age=0"
                                      : res.get_header_value("Cache-Control") +
                                            ", stale-while-revalidate=" +
                                            std::to_string(static_cast<int64_t>(planned->stale_s));
        res.headers.erase("Cache-Control");
        res.set_header("Cache-Control", control);
      }
      if (NoneMatch(req, r.hit->meta)) {
        res.status = 304;
        return arrow::Status::OK();
      }
      ARROW_ASSIGN_OR_RAISE(auto stored, StoredStream::Open(r.hit->file));
      std::vector<std::unique_ptr<StoredStream>> parts;
      parts.push_back(std::move(stored));
      res.status = 200;
      StreamIpcBody(&res, StoredPayloads(std::move(parts)), nullptr);
      return arrow::Status::OK();
    }
    // A miss or bypass: wait for the schema so that a query failing at once (bad SQL, an
    // unreachable database) is an error status, not a broken 200 body.
    auto body = FillPayloads(r.fill, r.reader);
    auto schema = body->Schema();
    if (!schema.ok()) {
      return arrow::Status(schema.status().code(),
                           std::string(what) + ": " + schema.status().message(),
                           schema.status().detail());
    }
    res.set_header("Cache-Control", "no-cache");
    res.status = 200;
    StreamIpcBody(&res, std::move(body), nullptr);
    return arrow::Status::OK();
  }();
  if (!st.ok()) SendError(res, st);
}

}  // namespace quiver

namespace quiver {

void HttpApi::GetResult(const httplib::Request& req, httplib::Response& res) {
  auto st = [&]() -> arrow::Status {
    const std::string key = req.matches[1].str();
    // A tenant reads only its own results, and shared ones it is granted.
    ARROW_RETURN_NOT_OK(CheckResultAccess(engine_, HttpCaller(), TenantScope::Of(HttpCaller()),
                                          key));
    ARROW_ASSIGN_OR_RAISE(auto view, HttpViewRequest(req, key, {}));
    const int64_t now = engine_->options().clock->NowMillis();
    if (view) {
      ARROW_ASSIGN_OR_RAISE(auto served, engine_->views()->Serve(*view));
      return SendView(req, served, now, &res);
    }
    ARROW_ASSIGN_OR_RAISE(auto parts, engine_->views()->OpenSourceParts(key, std::nullopt));
    const EntryMeta& meta = parts.back().meta;
    SetCacheHeaders(meta, now, &res);
    res.set_header("X-Quiver-Key", key);
    if (NoneMatch(req, meta)) {
      res.status = 304;
      return arrow::Status::OK();
    }
    std::vector<std::unique_ptr<StoredStream>> streams;
    for (const auto& part : parts) {
      ARROW_ASSIGN_OR_RAISE(auto stored, StoredStream::Open(part.file));
      streams.push_back(std::move(stored));
    }
    res.status = 200;
    StreamIpcBody(&res, StoredPayloads(std::move(streams)), nullptr);
    return arrow::Status::OK();
  }();
  if (!st.ok()) SendError(res, st);
}

}  // namespace quiver
