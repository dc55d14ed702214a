// QueryCache: freshness -- serving a result within its stale-while-revalidate window after
// expiry (RFC 5861), and refreshing a hot result in the background before it expires
// (XFetch, policy/early_refresh.h), so that a hot key's readers never wait for a miss.
//
// A background refresh is an ordinary fill of the key, led under its fill lease: requests of
// this node that would miss join it (it is registered in the FillGroup), other nodes see the
// lease held and do not start another, and its result is published like any other. It has no
// reader of its own. Until it publishes, readers are served the previous result (stale, or
// still fresh for an early refresh); if it fails, the stale result is served until its window
// ends, and the next stale read starts another refresh.
#include <spdlog/spdlog.h>

#include "cache/query_cache.h"

namespace quiver {

arrow::Result<std::optional<OpenEntry>> QueryCache::OpenStale(const QueryPlan& plan) {
  const std::string index_key = kQueryKeyPrefix + plan.key;
  ARROW_ASSIGN_OR_RAISE(auto meta, options_.entries->index()->Get(index_key, std::nullopt));
  // A refresh may have published since the caller's lookup: its fresh result is served too.
  const int64_t window_ms = static_cast<int64_t>(plan.stale_s * 1000);
  if (!meta || meta->expired(options_.clock->NowMillis() - window_ms)) return std::nullopt;
  return options_.entries->OpenListed(std::move(*meta));
}

int64_t QueryCache::StaleKeepMillis(const EntryMeta& meta) const {
  auto it = options_.sources.find(meta.source);
  if (it == options_.sources.end()) return 0;
  return static_cast<int64_t>(MaxStaleWhileRevalidate(it->second->spec()) * 1000);
}

void QueryCache::MaybeRefresh(const QueryPlan& plan, QueryResponse* response) {
  const EntryMeta& served = response->hit->meta;
  if (response->stale) {
    response->refreshing = StartRefresh(plan, served, /*early=*/false);
    return;
  }
  if (plan.early_refresh_beta <= 0) return;
  // A refresh already running: this hit has nothing to decide.
  if (options_.fills->Find(plan.key)) {
    response->refreshing = true;
    return;
  }
  if (ShouldRefreshEarly(options_.clock->NowMillis(), served.expires_ms, served.cost_ms,
                         plan.early_refresh_beta, options_.random())) {
    response->refreshing = StartRefresh(plan, served, /*early=*/true);
  }
}

bool QueryCache::StartRefresh(const QueryPlan& plan, const EntryMeta& served, bool early) {
  if (stopping_) return false;
  const std::string index_key = kQueryKeyPrefix + plan.key;
  std::lock_guard<std::mutex> lock(KeyMutex(plan.key));
  if (options_.fills->Find(plan.key)) return true;  // the key's refresh (or a fill) runs here
  auto grant = options_.fills->Acquire(plan.key);
  if (!grant.ok()) {
    spdlog::warn("query {}: not refreshing in the background: {}", plan.key.substr(0, 12),
                 grant.status().ToString());
    return false;
  }
  // Held elsewhere: another node runs the key's fill (or a previous run of this node's, which
  // ends with its lease); its result is published for everyone.
  if (!grant->acquired) return true;
  LeaseRef lease{FillGroup::LeaseName(plan.key), grant->token};
  // Refresh only the result that was served: a newer one published between the read and the
  // grant needs no refresh, and a removed (invalidated) one is not brought back from here.
  auto latest = options_.entries->index()->Get(index_key, std::nullopt);
  if (!latest.ok() || !*latest || (*latest)->version != served.version ||
      (*latest)->blob != served.blob) {
    auto released = options_.entries->index()->ReleaseLease(lease);
    if (!released.ok()) spdlog::debug("releasing an unused fill lease: {}", released.ToString());
    return false;
  }
  auto fill = std::make_shared<Fill>(plan.key, /*joinable=*/true, options_.fill_memory_bytes);
  options_.fills->Register(plan.key,
                           FillSlot{fill, FillRole::kLeader, lease, options_.fills->node()});
  {
    std::lock_guard<std::mutex> threads(threads_mutex_);
    refreshes_.insert(fill);
  }
  Count(&QueryStats::refreshes);
  if (early) Count(&QueryStats::early_refreshes);
  const int64_t now = options_.clock->NowMillis();
  spdlog::info("query {} on {}: {} refresh started ({} ms {} expiry)", plan.key.substr(0, 12),
               plan.request.source, early ? "early" : "stale-while-revalidate",
               std::abs(served.expires_ms - now), now < served.expires_ms ? "before" : "after");
  StartThread([this, plan, fill, lease, now] {
    RunLeader(plan, fill, lease, now, /*cacheable=*/true);
  });
  return true;
}

bool QueryCache::EndRefresh(const std::shared_ptr<Fill>& fill) {
  std::lock_guard<std::mutex> lock(threads_mutex_);
  return refreshes_.erase(fill) > 0;
}

}  // namespace quiver
