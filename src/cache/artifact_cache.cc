#include "cache/artifact_cache.h"

#include <algorithm>

#include <arrow/util/key_value_metadata.h>
#include <nlohmann/json.hpp>

#include "cache/fill_pump.h"
#include "common/rejection.h"
#include "format/stored_stream.h"

namespace quiver {

arrow::Result<QueryPlan> ArtifactCache::Plan(const ArtifactRequest& request) const {
  if (!source_) return arrow::Status::Invalid("artifacts are not enabled on this server");
  ARROW_ASSIGN_OR_RAISE(auto target, source_->Check(request.url, request.format));
  const double ttl = request.ttl_s.value_or(source_->spec().ttl_s);
  if (!(ttl > 0)) return arrow::Status::Invalid("ttl_s must be > 0, got ", ttl);
  QueryPlan plan;
  plan.source = source_;
  plan.normalized_sql = target.canonical;
  plan.canonical = nlohmann::json{{"scope", request.scope},
                                  {"artifact", target.url},
                                  {"format", ArtifactFormatName(target.format)}}
                       .dump();
  plan.key = Sha256Hex(plan.canonical);
  plan.ttl_s = std::min(ttl, max_ttl_s_);
  plan.request.source = source_->spec().name;
  plan.request.sql = target.url;
  plan.request.ttl_s = request.ttl_s;
  plan.request.scope = request.scope;
  plan.request.tenant = request.tenant;
  return plan;
}

arrow::Result<QueryResponse> ArtifactCache::Execute(const QueryPlan& plan) {
  ARROW_ASSIGN_OR_RAISE(auto response, queries_->Execute(plan));
  std::lock_guard<std::mutex> lock(mutex_);
  if (response.kind == QueryResponse::Kind::kHit) {
    ++stats_.hits;
  } else if (response.joined) {
    ++stats_.joins;
  } else {
    ++stats_.misses;
  }
  return response;
}

arrow::Status ArtifactCache::Describe(const OpenEntry& entry, ArtifactFetched* out) const {
  out->rows = entry.meta.rows;
  out->bytes = entry.meta.bytes;
  out->created_ms = entry.meta.created_ms;
  out->expires_ms = entry.meta.expires_ms;
  ARROW_ASSIGN_OR_RAISE(auto stored, StoredStream::Open(entry.file));
  const auto& metadata = stored->schema()->metadata();
  if (!metadata) return arrow::Status::OK();
  auto get = [&](const char* name) {
    auto value = metadata->Get(name);
    return value.ok() ? *value : std::string();
  };
  out->etag = get("quiver.artifact.etag");
  if (auto mtime = get("quiver.artifact.mtime_ms"); !mtime.empty()) {
    out->mtime_ms = std::stoll(mtime);
  }
  if (auto size = get("quiver.artifact.size"); !size.empty()) out->size = std::stoll(size);
  return arrow::Status::OK();
}

arrow::Result<ArtifactFetched> ArtifactCache::Fetch(const ArtifactRequest& request) {
  ARROW_ASSIGN_OR_RAISE(auto plan, Plan(request));
  ARROW_ASSIGN_OR_RAISE(auto response, Execute(plan));
  ArtifactFetched out;
  out.key = plan.key;
  out.url = plan.request.sql;
  out.format = nlohmann::json::parse(plan.normalized_sql)["format"].get<std::string>();
  if (response.hit) {
    out.cache = "hit";
    ARROW_RETURN_NOT_OK(Describe(*response.hit, &out));
    return out;
  }
  out.cache = response.joined ? "joined" : "miss";
  // Read the fill to its end (its error is the fetch's), then wait for its commit.
  auto fill = response.fill;
  arrow::Status read;
  while (true) {
    auto next = fill->WaitNext(response.reader);
    if (!next.ok()) {
      read = next.status();
      break;
    }
    if (!*next) break;
  }
  fill->Detach(response.reader);
  ARROW_RETURN_NOT_OK(read);
  fill->WaitSettled();
  ARROW_ASSIGN_OR_RAISE(auto entry, entries_->Open(kQueryKeyPrefix + plan.key, std::nullopt,
                                                   /*promote=*/false));
  if (!entry) {
    const std::string reason = fill->not_cached_reason();
    if (reason == kTooLargeToCache) {
      return Reject(arrow::Status::CapacityError("artifact '", out.url, "' is too large to cache: ",
                                                 reason),
                    RejectionKind::kTooLarge, "max_entry_bytes", max_entry_bytes_);
    }
    return arrow::Status::IOError("artifact '", out.url, "' was fetched but not cached: ",
                                  reason.empty() ? "it expired or was removed at once" : reason);
  }
  ARROW_RETURN_NOT_OK(Describe(*entry, &out));
  return out;
}

ArtifactStats ArtifactCache::Stats() const {
  ArtifactStats s;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    s = stats_;
  }
  if (source_) s.source = source_->stats();
  return s;
}

}  // namespace quiver
