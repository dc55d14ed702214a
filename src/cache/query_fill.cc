// QueryCache: executing a query into a fill -- and, when this node holds the fill lease, into
// the store, publishing the result with the lease's fencing token.
#include <chrono>

#include <spdlog/spdlog.h>

#include "cache/fill_pump.h"
#include "cache/query_cache.h"

namespace quiver {

namespace {

int64_t MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

}  // namespace

std::string QueryCache::StopReason(Fill* fill, bool storing) {
  if (stopping_) return "server is shutting down";
  if (fill->Abandoned() && (!storing || options_.cancel_unread_fills)) {
    return "every reader went away";
  }
  return "";
}

std::unique_ptr<EntryWriter> QueryCache::BeginEntry(const QueryPlan& plan, Fill* fill) {
  auto begun = options_.entries->NewWriter(kQueryKeyPrefix + plan.key, options_.max_entry_bytes,
                                           "max_entry_bytes");
  if (!begun.ok()) {
    fill->StopCaching("storing the result failed: " + begun.status().message());
    return nullptr;
  }
  return std::move(*begun);
}

void QueryCache::RunLeader(const QueryPlan& plan, const std::shared_ptr<Fill>& fill,
                           std::optional<LeaseRef> lease, int64_t created_ms, bool cacheable) {
  const auto start = std::chrono::steady_clock::now();
  const std::string index_key = kQueryKeyPrefix + plan.key;
  {
    std::lock_guard<std::mutex> lock(threads_mutex_);
    live_fills_.insert(fill);
  }
  // Holding the lease, this fill is the key's new version from now on: entries derived
  // from the previous one go, and entries derived from this stream (its readers may start
  // them before it commits) are kept.
  bool storable = lease.has_value();
  if (storable) {
    auto announced = options_.invalidator->NewVersionComing(index_key);
    if (!announced.ok()) {  // storing this result could leave stale dependents
      fill->StopCaching("invalidating what was derived from the previous result failed: " +
                        announced.message());
      storable = false;
    }
  }
  // Taken before the source is read: an invalidation from here on wins.
  CommitRequest commit;
  commit.depends_on = plan.request.depends_on;
  commit.tags = plan.request.tags;
  commit.also_watched = {KeyGeneration(index_key)};
  commit.lease = lease;
  auto since = options_.entries->index()->Snapshot();
  if (storable && !since.ok()) {
    fill->StopCaching("the index is unavailable: " + since.status().message());
    storable = false;
  }
  if (since.ok()) commit.since = *since;
  Count(&QueryStats::executions);
  {
    std::lock_guard<std::mutex> lock(stats_mutex_);
    ++stats_.executions_by_key[plan.key];
  }
  auto stream = plan.source->Execute(plan.normalized_sql, plan.params);
  if (!stream.ok()) {
    spdlog::warn("query {} on {}: {}", plan.key.substr(0, 12), plan.request.source,
                 stream.status().ToString());
    return EndFill(plan, fill, stream.status(), lease);
  }
  {
    std::lock_guard<std::mutex> lock(threads_mutex_);
    running_streams_.insert(stream->get());
  }
  auto entry = storable ? BeginEntry(plan, fill.get()) : nullptr;
  PumpResult pumped = PumpStream(stream->get(), fill.get(), entry.get(), [&](bool entry_failed) {
    return StopReason(fill.get(), entry && !entry_failed);
  });
  {
    std::lock_guard<std::mutex> lock(threads_mutex_);
    running_streams_.erase(stream->get());
  }
  stream->reset();  // give the connection back before committing
  const int64_t exec_ms = MillisSince(start);
  if (!pumped.status.ok()) {
    spdlog::warn("query {} on {} failed after {} ms: {}", plan.key.substr(0, 12),
                 plan.request.source, exec_ms, pumped.status.ToString());
    if (entry) entry->Abort();  // its temp file goes before any reader learns of the failure
    return EndFill(plan, fill, pumped.status, lease);
  }
  // The readers have everything: end their streams now rather than make them wait for the
  // commit (an fsync of the whole result). Requests arriving meanwhile still join the fill,
  // which keeps its batches until it is unregistered after the commit.
  fill->Finish(arrow::Status::OK());
  if (entry && !pumped.entry_failed) {
    CommitResult(plan, fill, std::move(entry), commit, created_ms, exec_ms);
  } else if (cacheable) {
    Count(&QueryStats::not_cached);
  }
  EndFill(plan, fill, arrow::Status::OK(), lease);
}

void QueryCache::CommitResult(const QueryPlan& plan, const std::shared_ptr<Fill>& fill,
                              std::unique_ptr<EntryWriter> entry, const CommitRequest& request,
                              int64_t created_ms, int64_t exec_ms) {
  // From here a refused renewal is settled by the publish (which also releases the lease).
  options_.fills->Committing(plan.key, fill);
  auto meta = entry->Finish();
  if (meta.ok()) {
    meta->source = plan.request.source;
    meta->query = plan.canonical;
    meta->tenant = plan.request.tenant;
    meta->cost_ms = exec_ms;
    meta->created_ms = created_ms;
    meta->expires_ms = created_ms + static_cast<int64_t>(plan.ttl_s * 1000);
    meta = options_.committer->Commit(std::move(*meta), request);
  }
  if (meta.ok()) {
    options_.fills->ForgetLease(plan.key, fill);  // the publish released it
    spdlog::info("query {} on {}: executed in {} ms, cached {} rows ({} bytes) for {} s",
                 plan.key.substr(0, 12), plan.request.source, exec_ms, meta->rows, meta->bytes,
                 plan.ttl_s);
    return;
  }
  fill->StopCaching(meta.status().message());
  Count(&QueryStats::not_cached);
  if (RefusalOf(meta.status()) == Refusal::kLeaseLost) {
    Count(&QueryStats::fenced);
    spdlog::warn("query {}: publish refused (fenced): {}", plan.key.substr(0, 12),
                 meta.status().message());
    return;
  }
  spdlog::warn("query {}: not cached: {}", plan.key.substr(0, 12), meta.status().message());
}

void QueryCache::EndFill(const QueryPlan& plan, const std::shared_ptr<Fill>& fill,
                         arrow::Status status, const std::optional<LeaseRef>& lease) {
  if (!status.ok()) Count(&QueryStats::failures);
  if (EndRefresh(fill) && !status.ok()) {
    spdlog::warn("query {} on {}: background refresh failed; the previous result is served "
                 "while its stale window lasts: {}",
                 plan.key.substr(0, 12), plan.request.source, status.ToString());
  }
  // Ended before its lease goes: a follower that sees the lease free must find the end.
  fill->Finish(std::move(status));
  options_.fills->Unregister(plan.key, fill);
  fill->Settle();
  {
    std::lock_guard<std::mutex> lock(threads_mutex_);
    live_fills_.erase(fill);
  }
  if (!lease) return;  // nobody else waits for a fill that held no lease
  IndexEvent ended;
  ended.kind = IndexEvent::Kind::kFillEnded;
  ended.node = options_.fills->node();
  ended.key = kQueryKeyPrefix + plan.key;
  auto told = options_.entries->index()->Announce(ended);
  if (!told.ok()) spdlog::debug("announcing the end of {}: {}", plan.key.substr(0, 12), told.ToString());
}

}  // namespace quiver
