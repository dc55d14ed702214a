// HttpApi: queries -- POST /v1/query with the Flight query command's JSON (docs/http.md,
// "Queries"). A hit streams the stored result; a miss streams the fill as the query runs
// (joining it if one is running), exactly as Flight's DoGet does.

#include <nlohmann/json.hpp>

#include "server/http_api.h"
#include "server/http_body.h"
#include "server/http_cache_headers.h"
#include "server/query_command.h"

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
  if (!r.node.empty()) res->set_header("X-Quiver-Node", r.node);
  if (!r.reason.empty()) res->set_header("X-Quiver-Reason", r.reason);
}

}  // namespace

void HttpApi::Query(const httplib::Request& req, httplib::Response& res) {
  auto st = [&]() -> arrow::Status {
    ARROW_RETURN_NOT_OK(CheckParams(req, {}));
    if (req.body.empty()) {
      return arrow::Status::Invalid("POST /v1/query needs a JSON body such as "
                                    "{\"source\": \"main\", \"sql\": \"SELECT 1\"}");
    }
    const char* what = CommandName(req.body);
    auto planned = PlanCommand(engine_, req.body);
    if (!planned.ok()) {
      return arrow::Status(planned.status().code(), std::string(what) + ": " +
                                                        planned.status().message(),
                           planned.status().detail());
    }
    ARROW_ASSIGN_OR_RAISE(auto r, ExecuteCommand(engine_, *planned));
    SetQueryHeaders(r, &res);
    if (r.hit) {
      SetCacheHeaders(r.hit->meta, engine_->options().clock->NowMillis(), &res);
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
