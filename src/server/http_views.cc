#include "server/http_views.h"

#include "format/stored_stream.h"
#include "server/http_api.h"
#include "server/http_body.h"
#include "server/http_auth.h"
#include "server/http_cache_headers.h"
#include "server/payload_source.h"
#include "server/tenant_scope.h"
#include "server/view_request.h"

namespace quiver {

arrow::Result<std::optional<ViewRequest>> HttpViewRequest(
    const httplib::Request& req, const std::string& key,
    const std::set<std::string>& also_allowed) {
  const httplib::Params params = QueryParams(req);
  ARROW_ASSIGN_OR_RAISE(auto request, ParseViewParams(key, params, also_allowed));
  if (params.count("format") == 0) {
    ARROW_ASSIGN_OR_RAISE(request.encoding, EncodingFromAccept(req.get_header_value("Accept")));
  }
  if (request.view.empty() && request.encoding == Encoding::kArrowStream) return std::nullopt;
  return request;
}

arrow::Status SendView(const httplib::Request& req, const ViewResult& view, int64_t now_ms,
                       httplib::Response* res) {
  const EntryMeta& meta = view.entry.meta;
  SetCacheHeaders(meta, now_ms, res);
  if (!view.stored) {
    res->headers.erase("Cache-Control");
    res->set_header("Cache-Control", "no-store");  // served from memory; not kept
    res->set_header("X-Quiver-View-Not-Stored", view.not_stored);
  }
  res->set_header("X-Quiver-View-Cache", view.cached_hit ? "hit" : "derived");
  res->set_header("X-Quiver-Source-Key", TenantScope::Of(HttpCaller()).ShowKey(view.source.key));
  res->set_header("X-Quiver-Source-Version", std::to_string(view.source.version));
  res->set_header("X-Quiver-Derive-Ms", std::to_string(view.derive_ms));
  if (NoneMatch(req, meta)) {
    res->status = 304;
    return arrow::Status::OK();
  }
  res->status = 200;
  if (view.encoded) {
    OpenEntry entry = view.entry;
    StreamBody(
        res, std::string(ContentType(view.encoding)),
        [entry](arrow::io::OutputStream* out) {
          return ForEachEncodedChunk(entry, [out](std::shared_ptr<arrow::Buffer> piece) {
            return out->Write(piece);
          });
        },
        nullptr);
    return arrow::Status::OK();
  }
  ARROW_ASSIGN_OR_RAISE(auto stored, StoredStream::Open(view.entry.file));
  std::vector<std::unique_ptr<StoredStream>> parts;
  parts.push_back(std::move(stored));
  StreamIpcBody(res, StoredPayloads(std::move(parts)), nullptr);
  return arrow::Status::OK();
}

}  // namespace quiver
