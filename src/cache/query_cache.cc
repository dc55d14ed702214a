#include "cache/query_cache.h"

#include <chrono>

#include <arrow/ipc/writer.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "exec/params.h"
#include "exec/sql_text.h"

namespace quiver {

std::string Sha256Hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

namespace {

int64_t MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

// Sends each encoded message to the fill's readers and, while the result is still being
// cached, to the store.
class TeeSink final : public arrow::ipc::internal::IpcPayloadWriter {
 public:
  TeeSink(Fill* fill, std::shared_ptr<arrow::Schema> schema, EntryWriter* entry,
          std::atomic<bool>* entry_failed)
      : fill_(fill), schema_(std::move(schema)), entry_(entry), entry_failed_(entry_failed) {}

  arrow::Status WritePayload(const arrow::ipc::IpcPayload& payload) override {
    if (payload.type == arrow::ipc::MessageType::SCHEMA) {
      fill_->SetSchema(schema_, payload);
    } else {
      fill_->Append(payload);
    }
    if (entry_ && !*entry_failed_) {
      auto st = entry_->WritePayload(payload);
      if (!st.ok()) {
        *entry_failed_ = true;
        fill_->StopCaching(st.IsCapacityError()
                               ? "result exceeds max_entry_bytes; streamed but not cached"
                               : "storing the result failed: " + st.message());
        if (!st.IsCapacityError()) spdlog::error("query {}: {}", fill_->key(), st.ToString());
      }
    }
    return arrow::Status::OK();
  }
  arrow::Status Close() override { return arrow::Status::OK(); }

 private:
  Fill* fill_;
  std::shared_ptr<arrow::Schema> schema_;
  EntryWriter* entry_;
  std::atomic<bool>* entry_failed_;
};

}  // namespace

arrow::Result<std::unique_ptr<QueryCache>> QueryCache::Make(QueryCacheOptions options) {
  if (!options.objects) return arrow::Status::Invalid("QueryCache needs an ObjectCache");
  if (options.max_ttl_s <= 0) return arrow::Status::Invalid("max_ttl_s must be > 0");
  if (options.max_entry_bytes <= 0) return arrow::Status::Invalid("max_entry_bytes must be > 0");
  std::unique_ptr<QueryCache> cache(new QueryCache(std::move(options)));
  if (cache->options_.reclaim_interval_s > 0) {
    cache->reclaimer_ = std::thread([c = cache.get()] { c->ReclaimLoop(); });
  }
  return cache;
}

void QueryCache::Shutdown() {
  stopping_ = true;
  threads_cv_.notify_all();
  std::lock_guard<std::mutex> lock(threads_mutex_);
  // Interrupt queries still running on their databases, and end their fills now: a
  // driver may not support cancellation, and readers must not wait for it.
  for (auto* stream : running_streams_) stream->Cancel();
  for (const auto& fill : live_fills_) {
    fill->StopCaching("server is shutting down");
    fill->Finish(arrow::Status::Cancelled("server is shutting down"));
  }
}

bool QueryCache::WaitForFills(double timeout_s) {
  std::unique_lock<std::mutex> lock(threads_mutex_);
  return threads_cv_.wait_for(lock, std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)),
                              [&] { return running_fills_ == 0; });
}

QueryCache::~QueryCache() {
  Shutdown();
  if (reclaimer_.joinable()) reclaimer_.join();
  std::unique_lock<std::mutex> lock(threads_mutex_);
  threads_cv_.wait(lock, [&] { return running_fills_ == 0; });
}

arrow::Result<QueryPlan> QueryCache::Plan(QueryRequest request) const {
  auto it = options_.sources.find(request.source);
  if (it == options_.sources.end()) {
    std::string known;
    for (const auto& [name, _] : options_.sources) known += (known.empty() ? "" : ", ") + name;
    return arrow::Status::Invalid("unknown source '", request.source, "'; configured sources: ",
                                  known.empty() ? "(none)" : known);
  }
  QueryPlan plan;
  plan.source = it->second;
  plan.normalized_sql = NormalizeSql(request.sql, plan.source->dialect());
  if (plan.normalized_sql.empty()) return arrow::Status::Invalid("query 'sql' is empty");
  ARROW_ASSIGN_OR_RAISE(plan.params, ParamsFromJson(request.params_json));
  double ttl = request.ttl_s.value_or(plan.source->spec().ttl_s);
  if (!(ttl > 0)) return arrow::Status::Invalid("ttl_s must be > 0, got ", ttl);
  plan.ttl_s = std::min(ttl, options_.max_ttl_s);

  nlohmann::json canonical = {{"scope", request.scope},
                              {"source", request.source},
                              {"sql", plan.normalized_sql},
                              {"params", nlohmann::json::parse(request.params_json)}};
  plan.canonical = canonical.dump();
  plan.key = Sha256Hex(plan.canonical);
  if (request.preview) {
    plan.bypass_reason = "preview";
  } else if (auto fn = FindNondeterministic(request.sql, plan.source->dialect());
             fn && !request.cache_nondeterministic) {
    plan.bypass_reason = "non-deterministic: " + *fn +
                         " (set cache_nondeterministic to cache it anyway)";
  }
  plan.request = std::move(request);
  return plan;
}

arrow::Result<QueryResponse> QueryCache::Execute(const QueryPlan& plan) {
  QueryResponse response;
  response.key = plan.key;
  const int64_t now = options_.clock->NowMillis();
  if (!plan.bypass_reason.empty()) {
    auto fill = std::make_shared<Fill>(plan.key, /*joinable=*/false);
    response.kind = QueryResponse::Kind::kBypass;
    response.reason = plan.bypass_reason;
    response.reader = *fill->Attach();
    response.fill = fill;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++stats_.bypasses;
    }
    StartFill(plan, fill, /*cacheable=*/false, now);
    return response;
  }

  const std::string index_key = kQueryKeyPrefix + plan.key;
  std::lock_guard<std::mutex> lock(mutex_);
  // A fresh entry in the store is a hit.
  auto try_hit = [&]() -> arrow::Result<bool> {
    ARROW_ASSIGN_OR_RAISE(auto entry, options_.objects->OpenLatest(index_key));
    if (!entry || entry->meta.expired(now)) return false;
    ++stats_.hits;
    response.kind = QueryResponse::Kind::kHit;
    response.created_ms = entry->meta.created_ms;
    response.expires_ms = entry->meta.expires_ms;
    response.exec_ms = entry->meta.cost_ms;
    response.hit = std::move(entry);
    return true;
  };
  // A running fill first: joining it is what makes the flight single. A fill that has
  // finished streaming stays registered until its commit; once the entry is published,
  // serve that instead.
  auto running = fills_.find(plan.key);
  if (running != fills_.end()) {
    if (running->second->finished()) {
      ARROW_ASSIGN_OR_RAISE(bool hit, try_hit());
      if (hit) return response;
    }
    if (auto reader = running->second->Attach()) {
      ++stats_.joins;
      response.joined = true;
      response.fill = running->second;
      response.reader = *reader;
      response.created_ms = now;
      response.expires_ms = now + static_cast<int64_t>(plan.ttl_s * 1000);
      return response;
    }
  }
  ARROW_ASSIGN_OR_RAISE(bool hit, try_hit());
  if (hit) return response;
  auto fill = std::make_shared<Fill>(plan.key, /*joinable=*/true);
  response.reader = *fill->Attach();
  response.fill = fill;
  response.created_ms = now;
  response.expires_ms = now + static_cast<int64_t>(plan.ttl_s * 1000);
  fills_[plan.key] = fill;
  ++stats_.misses;
  StartFill(plan, fill, /*cacheable=*/true, now);
  return response;
}

void QueryCache::StartFill(const QueryPlan& plan, std::shared_ptr<Fill> fill, bool cacheable,
                           int64_t created_ms) {
  {
    std::lock_guard<std::mutex> lock(threads_mutex_);
    ++running_fills_;
    live_fills_.insert(fill);
  }
  std::thread([this, plan, fill, cacheable, created_ms] {
    RunFill(plan, fill, cacheable, created_ms);
    std::lock_guard<std::mutex> lock(threads_mutex_);
    live_fills_.erase(fill);
    --running_fills_;
    threads_cv_.notify_all();
  }).detach();
}

void QueryCache::Unregister(const std::shared_ptr<Fill>& fill) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = fills_.find(fill->key());
  if (it != fills_.end() && it->second == fill) fills_.erase(it);
}

void QueryCache::RunFill(QueryPlan plan, std::shared_ptr<Fill> fill, bool cacheable,
                         int64_t created_ms) {
  const auto start = std::chrono::steady_clock::now();
  const std::string& key = plan.key;
  std::unique_ptr<EntryWriter> entry;
  auto finish = [&](arrow::Status st) {
    // Discard a failed result's temp file before any reader learns of the failure.
    if (!st.ok() && entry) entry->Abort();
    if (!st.ok()) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++stats_.failures;
    }
    if (cacheable) Unregister(fill);
    fill->Finish(std::move(st));
  };

  // A cacheable fill is the new version of its key from now on: entries derived from the
  // previous one go, and entries derived from this stream (its readers may start them
  // before it commits) are kept. Done here, not under the caller's lock: it may wait for
  // the invalidation lock.
  bool storable = cacheable;
  if (cacheable) {
    auto announced = options_.objects->NewVersionComing(kQueryKeyPrefix + key);
    if (!announced.ok()) {  // storing this result could leave stale dependents
      fill->StopCaching("invalidating what was derived from the previous result failed: " +
                        announced.message());
      storable = false;
    }
  }
  // Taken before the source is read: an invalidation from here on wins.
  std::vector<std::string> keys = plan.request.depends_on;
  keys.push_back(kQueryKeyPrefix + key);
  auto generations = options_.objects->Snapshot(keys, plan.request.tags);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.executions;
    ++stats_.executions_by_key[key];
  }
  auto stream = plan.source->Execute(plan.normalized_sql, plan.params);
  if (!stream.ok()) {
    spdlog::warn("query {} on {}: {}", key.substr(0, 12), plan.request.source,
                 stream.status().ToString());
    return finish(stream.status());
  }
  auto schema = (*stream)->schema();
  {
    std::lock_guard<std::mutex> lock(threads_mutex_);
    running_streams_.insert(stream->get());
  }
  struct Untrack {
    QueryCache* self;
    QueryStream* stream;
    ~Untrack() {
      std::lock_guard<std::mutex> lock(self->threads_mutex_);
      self->running_streams_.erase(stream);
    }
  };
  auto untrack = std::make_unique<Untrack>(Untrack{this, stream->get()});

  std::atomic<bool> entry_failed{false};
  if (storable) {
    auto begun = options_.objects->BeginEntry(kQueryKeyPrefix + key, options_.max_entry_bytes,
                                              "max_entry_bytes");
    if (begun.ok()) {
      entry = std::move(*begun);
      entry->SetSchema(*schema);
    } else {
      fill->StopCaching("storing the result failed: " + begun.status().message());
      entry_failed = true;
    }
  }
  auto writer = arrow::ipc::internal::OpenRecordBatchWriter(
      std::make_unique<TeeSink>(fill.get(), schema, entry.get(), &entry_failed), schema);
  if (!writer.ok()) return finish(writer.status());

  arrow::Status status;
  while (true) {
    bool nobody_reads = fill->Abandoned();
    if (stopping_ || (nobody_reads && (!cacheable || entry_failed || options_.cancel_unread_fills))) {
      (*stream)->Cancel();
      status = arrow::Status::Cancelled(stopping_ ? "server is shutting down"
                                                  : "every reader went away");
      break;
    }
    auto batch = (*stream)->Next();
    if (!batch.ok()) {
      status = batch.status();
      break;
    }
    if (!*batch) break;
    status = (*writer)->WriteRecordBatch(**batch);
    if (!status.ok()) break;
    if (entry && !entry_failed) entry->CountBatch((*batch)->num_rows());
  }
  if (status.ok()) status = (*writer)->Close();
  untrack.reset();
  stream->reset();  // give the connection back before committing
  const int64_t exec_ms = MillisSince(start);

  if (!status.ok()) {
    spdlog::warn("query {} on {} failed after {} ms: {}", key.substr(0, 12),
                 plan.request.source, exec_ms, status.ToString());
    return finish(status);
  }
  // The readers have everything: end their streams now rather than make them wait for
  // the commit (an fsync of the whole result). Requests arriving meanwhile still join the
  // fill, which keeps its batches until it is unregistered after the commit. If a
  // dependency was already invalidated, say so on the way out (the commit re-checks).
  if (entry && !entry_failed) {
    if (auto changed = options_.objects->ChangedSince(generations)) {
      fill->StopCaching("not committed: " + *changed + " was invalidated while '" +
                        std::string(kQueryKeyPrefix) + key + "' was being computed");
    }
  }
  fill->Finish(arrow::Status::OK());
  if (entry && !entry_failed) {
    EntryMeta extras;
    extras.source = plan.request.source;
    extras.query = plan.canonical;
    extras.cost_ms = exec_ms;
    extras.created_ms = created_ms;
    extras.expires_ms = created_ms + static_cast<int64_t>(plan.ttl_s * 1000);
    PutOptions put;
    put.depends_on = plan.request.depends_on;
    put.tags = plan.request.tags;
    put.generations = std::move(generations);
    auto meta = entry->Commit(std::move(extras), put);
    if (meta.ok()) {
      spdlog::info("query {} on {}: executed in {} ms, cached {} rows ({} bytes) for {} s",
                   key.substr(0, 12), plan.request.source, exec_ms, meta->rows, meta->bytes,
                   plan.ttl_s);
    } else {
      fill->StopCaching(meta.status().message());
      entry_failed = true;
      spdlog::warn("query {}: not cached: {}", key.substr(0, 12), meta.status().message());
    }
  }
  if (cacheable && (entry_failed || !entry)) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.not_cached;
  }
  finish(arrow::Status::OK());
}

arrow::Result<int64_t> QueryCache::ReclaimExpired() {
  const int64_t now = options_.clock->NowMillis();
  ARROW_ASSIGN_OR_RAISE(auto entries, options_.objects->options().index->ListLatest(kQueryKeyPrefix));
  int64_t removed = 0;
  for (const auto& meta : entries) {
    if (!meta.expired(now)) continue;
    ARROW_ASSIGN_OR_RAISE(int64_t n, options_.objects->DeleteKeyIfExpired(meta.key, now));
    removed += n > 0 ? 1 : 0;
  }
  if (removed > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.reclaimed += removed;
    spdlog::info("reclaimed {} expired query results", removed);
  }
  return removed;
}

void QueryCache::ReclaimLoop() {
  auto interval = std::chrono::milliseconds(static_cast<int64_t>(options_.reclaim_interval_s * 1000));
  std::unique_lock<std::mutex> lock(threads_mutex_);
  while (!stopping_) {
    threads_cv_.wait_for(lock, interval, [&] { return stopping_.load(); });
    if (stopping_) break;
    lock.unlock();
    auto st = ReclaimExpired();
    if (!st.ok()) spdlog::warn("reclaiming expired results: {}", st.status().ToString());
    lock.lock();
  }
}

QueryStats QueryCache::Stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace quiver
