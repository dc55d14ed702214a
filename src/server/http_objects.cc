// HttpApi: objects -- GET / HEAD / PUT / DELETE /v1/objects/{key} (docs/http.md, "Objects").

#include <chrono>

#include <arrow/ipc/reader.h>
#include <arrow/record_batch.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/config.h"
#include "server/entry_stream.h"
#include "server/http_api.h"
#include "server/http_auth.h"
#include "server/http_body.h"
#include "server/http_cache_headers.h"
#include "server/http_views.h"
#include "server/result_access.h"
#include "server/tenant_scope.h"
#include "server/ticket.h"

namespace quiver {

using nlohmann::json;

namespace {

// The stored key the path names for the request's caller (its tenant's namespace).
arrow::Result<ObjectKey> KeyOf(const httplib::Request& req) {
  auto key = ObjectKey::Parse(req.matches[1].str());
  if (!key.ok()) return arrow::Status::Invalid("object key in the path: ", key.status().message());
  return TenantScope::Of(HttpCaller()).Key(*key);
}

// Feeds a PUT body to the object cache as Arrow's stream decoder yields it: the put begins at
// the schema, each batch is written as it is decoded, nothing is buffered whole.
class PutListener final : public arrow::ipc::Listener {
 public:
  PutListener(ObjectCache* cache, ObjectKey key, PutOptions options)
      : cache_(cache), key_(std::move(key)), options_(std::move(options)) {}

  arrow::Status OnSchemaDecoded(std::shared_ptr<arrow::Schema> schema) override {
    ARROW_ASSIGN_OR_RAISE(put_, cache_->BeginPut(key_, std::move(schema), options_));
    return arrow::Status::OK();
  }
  arrow::Status OnRecordBatchDecoded(std::shared_ptr<arrow::RecordBatch> batch) override {
    return put_->Write(*batch);
  }
  arrow::Status OnEOS() override {
    eos_ = true;
    return arrow::Status::OK();
  }

  PutWriter* put() { return put_.get(); }
  bool eos() const { return eos_; }

 private:
  ObjectCache* cache_;
  ObjectKey key_;
  PutOptions options_;
  std::unique_ptr<PutWriter> put_;
  bool eos_ = false;
};

arrow::Result<PutOptions> PutOptionsOf(Engine* engine, const httplib::Request& req) {
  ARROW_RETURN_NOT_OK(CheckParams(req, {"depends_on", "tag", "cost_ms", "patch"}));
  PutOptions options;
  if (req.has_header("If-Match")) {
    ARROW_ASSIGN_OR_RAISE(auto tag, ParseEntityTag(req.get_header_value("If-Match")));
    options.if_version = tag.version;
  } else if (req.get_header_value("If-None-Match") == "*") {
    options.if_version = 0;  // create only
  } else if (req.has_header("If-None-Match")) {
    return arrow::Status::Invalid("PUT takes If-None-Match: * (create only), got '",
                                  req.get_header_value("If-None-Match"), "'");
  }
  for (size_t i = 0; i < req.get_param_value_count("depends_on"); ++i) {
    auto dep = req.get_param_value("depends_on", i);
    if (!IsQueryKey(dep)) {
      auto parsed = ObjectKey::Parse(dep);
      if (!parsed.ok()) return arrow::Status::Invalid("depends_on: ", parsed.status().message());
    }
    options.depends_on.push_back(dep);
  }
  for (size_t i = 0; i < req.get_param_value_count("tag"); ++i) {
    auto tag = req.get_param_value("tag", i);
    if (tag.empty()) return arrow::Status::Invalid("tag must not be empty");
    options.tags.push_back(tag);
  }
  if (req.has_param("cost_ms")) {
    const auto text = req.get_param_value("cost_ms");
    char* end = nullptr;
    double cost = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !(cost >= 0) || cost > 1e12) {
      return arrow::Status::Invalid("cost_ms must be a non-negative number of milliseconds, got '",
                                    text, "'");
    }
    options.cost_ms = static_cast<int64_t>(cost);
  }
  if (req.has_param("patch")) {
    const auto text = req.get_param_value("patch");
    if (text != "true" && text != "false") {
      return arrow::Status::Invalid("patch must be true or false, got '", text, "'");
    }
    options.patch = text == "true";
  }
  const TenantScope scope = TenantScope::Of(HttpCaller());
  ARROW_RETURN_NOT_OK(scope.MapPutOptions(&options, [&](const std::string& result) {
    return CheckResultDependency(engine, HttpCaller(), scope, result);
  }));
  return options;
}

// An If-Match naming a whole ETag ("VERSION.CREATED_MS") must name the current version
// itself, not an earlier life of the key with the same number. (The version part is checked
// again atomically by the put.)
arrow::Status CheckIfMatchCreated(const httplib::Request& req, ObjectCache* cache,
                                  const ObjectKey& key) {
  if (!req.has_header("If-Match")) return arrow::Status::OK();
  ARROW_ASSIGN_OR_RAISE(auto tag, ParseEntityTag(req.get_header_value("If-Match")));
  if (!tag.created_ms) return arrow::Status::OK();
  ARROW_ASSIGN_OR_RAISE(auto latest, cache->Peek(key, std::nullopt));
  if (!latest || latest->meta.version != tag.version ||
      latest->meta.created_ms != *tag.created_ms) {
    return arrow::Status::AlreadyExists(
        "precondition failed: '", key.ToString(), "' is ",
        latest ? "at " + EntityTagOf(latest->meta) : std::string("absent"), ", not ",
        req.get_header_value("If-Match"));
  }
  return arrow::Status::OK();
}

}  // namespace

void HttpApi::GetObject(const httplib::Request& req, httplib::Response& res) {
  auto st = [&]() -> arrow::Status {
    ARROW_ASSIGN_OR_RAISE(auto key, KeyOf(req));
    ARROW_ASSIGN_OR_RAISE(auto view, HttpViewRequest(req, key.ToString(), {}));
    const int64_t now = engine_->options().clock->NowMillis();
    if (view) {
      ARROW_ASSIGN_OR_RAISE(auto served, engine_->views()->Serve(*view));
      return SendView(req, served, now, &res);
    }
    std::optional<uint64_t> version;
    if (req.has_param("version")) {
      ARROW_ASSIGN_OR_RAISE(version, ParseVersion(req.get_param_value("version"), "version"));
    }
    ObjectCache* cache = engine_->objects();
    ARROW_ASSIGN_OR_RAISE(auto read, cache->Read(key, version));
    if (!read) {
      if (version) {
        return arrow::Status::KeyError("no version ", *version, " of object '", key.ToString(),
                                       "' (deleted, never written, or no longer kept)");
      }
      return arrow::Status::KeyError("no object '", key.ToString(), "'");
    }
    const EntryMeta& meta = read->meta();
    SetCacheHeaders(meta, engine_->options().clock->NowMillis(), &res);
    res.set_header("X-Quiver-Key", TenantScope::Of(HttpCaller()).ShowKey(meta.key));
    res.set_header("X-Quiver-Version", std::to_string(meta.version));
    if (NoneMatch(req, meta)) {
      cache->CountNotModified();
      res.status = 304;
      return arrow::Status::OK();
    }
    ARROW_ASSIGN_OR_RAISE(auto parts, OpenParts(*read));
    res.status = 200;
    StreamIpcBody(&res, StoredPayloads(std::move(parts)), nullptr);
    return arrow::Status::OK();
  }();
  if (!st.ok()) SendError(res, st);
}

void HttpApi::PutObject(const httplib::Request& req, httplib::Response& res,
                        const httplib::ContentReader& body) {
  const auto start = std::chrono::steady_clock::now();
  ObjectCache* cache = engine_->objects();
  const bool conditional = req.has_header("If-Match");
  auto st = [&]() -> arrow::Status {
    ARROW_ASSIGN_OR_RAISE(auto key, KeyOf(req));
    const std::string where = "PUT '" + key.ToString() + "'";
    auto type = req.get_header_value("Content-Type");
    if (!type.empty() && type.rfind(kArrowStreamType, 0) != 0 &&
        type.rfind("application/octet-stream", 0) != 0) {
      return arrow::Status::Invalid(where, ": the body must be an Arrow IPC stream (",
                                    kArrowStreamType, "), got Content-Type '", type, "'");
    }
    ARROW_ASSIGN_OR_RAISE(auto options, PutOptionsOf(engine_, req));
    ARROW_RETURN_NOT_OK(CheckIfMatchCreated(req, cache, key));
    auto listener = std::make_shared<PutListener>(cache, key, options);
    arrow::ipc::StreamDecoder decoder(listener);
    arrow::Status failure;
    int64_t received = 0;
    const bool complete = body([&](const char* data, size_t length) {
      received += static_cast<int64_t>(length);
      if (listener->eos()) return true;  // bytes after the end-of-stream marker are ignored
      failure = decoder.Consume(reinterpret_cast<const uint8_t*>(data),
                                static_cast<int64_t>(length));
      return failure.ok();
    });
    auto abort = [&] {
      if (listener->put()) listener->put()->Abort();
    };
    if (!failure.ok()) {
      abort();
      // Engine refusals (too large, conflict) keep their kind; anything else is a bad body.
      if (failure.IsCapacityError() || failure.IsAlreadyExists() || failure.IsKeyError() ||
          failure.IsCancelled() || failure.IsIOError()) {
        return arrow::Status(failure.code(), where + ": " + failure.message(), failure.detail());
      }
      return arrow::Status::Invalid(where, ": malformed Arrow IPC stream: ", failure.message(),
                                    "; nothing was stored");
    }
    if (!complete) {
      abort();
      spdlog::warn("{}: the client went away after {} bytes; discarded", where, received);
      return arrow::Status::Cancelled(where, ": the body ended early (client gone after ",
                                      received, " bytes); nothing was stored");
    }
    if (!listener->put()) {
      return arrow::Status::Invalid(where, ": ",
                                    received == 0 ? "empty body" : "truncated schema message",
                                    ": expected an Arrow IPC stream; nothing was stored");
    }
    if (!listener->eos()) {
      // Without the end-of-stream marker a body cut at a message boundary would look whole.
      abort();
      return arrow::Status::Invalid(where, ": the Arrow IPC stream ends without its "
                                    "end-of-stream marker after ", received,
                                    " bytes (truncated?); nothing was stored");
    }
    ARROW_ASSIGN_OR_RAISE(auto meta, listener->put()->Commit());
    spdlog::info("put {}@{} over HTTP: {} rows, {} in {} ms", meta.key, meta.version, meta.rows,
                 FormatByteSize(meta.bytes),
                 std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - start)
                     .count());
    SetCacheHeaders(meta, engine_->options().clock->NowMillis(), &res);
    res.status = 201;
    const std::string shown = TenantScope::Of(HttpCaller()).ShowKey(meta.key);
    res.set_header("Location", "/v1/objects/" + shown);
    json ref = {{"endpoint", flight_endpoint_}, {"key", shown}, {"version", meta.version}};
    res.set_content(ref.dump(), kJsonType);
    return arrow::Status::OK();
  }();
  if (!st.ok()) {
    cache->CountPutFailure();
    SendError(res, st, conditional);
  }
}

void HttpApi::DeleteObject(const httplib::Request& req, httplib::Response& res) {
  auto st = [&]() -> arrow::Status {
    ARROW_ASSIGN_OR_RAISE(auto key, KeyOf(req));
    ARROW_RETURN_NOT_OK(CheckParams(req, {}));
    ARROW_ASSIGN_OR_RAISE(auto versions, engine_->objects()->Delete(key));
    if (versions == 0) return arrow::Status::KeyError("no object '", key.ToString(), "'");
    json out = {{"deleted", TenantScope::Of(HttpCaller()).ShowKey(key.ToString())},
                {"versions", versions}};
    res.set_content(out.dump(), kJsonType);
    return arrow::Status::OK();
  }();
  if (!st.ok()) SendError(res, st);
}

}  // namespace quiver
