// QueryCache: planning, dispatch (hit / join / lead / follow / bypass), reclaiming, stats.
// Executing a fill is in query_fill.cc, following another node's in query_follow.cc.
#include "cache/query_cache.h"

#include <chrono>
#include <cmath>
#include <thread>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include "cache/lease_run.h"
#include "common/hex.h"
#include "exec/params.h"
#include "exec/sql_text.h"

namespace quiver {

std::string Sha256Hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  return HexEncode(digest, length);
}

arrow::Result<std::unique_ptr<QueryCache>> QueryCache::Make(QueryCacheOptions options) {
  if (!options.entries || !options.committer || !options.invalidator || !options.evictor ||
      !options.fills) {
    return arrow::Status::Invalid("QueryCache needs the engine's parts");
  }
  if (options.max_ttl_s <= 0) return arrow::Status::Invalid("max_ttl_s must be > 0");
  if (options.max_entry_bytes <= 0) return arrow::Status::Invalid("max_entry_bytes must be > 0");
  if (options.fill_memory_bytes <= 0) {
    return arrow::Status::Invalid("fill_memory_bytes must be > 0");
  }
  std::unique_ptr<QueryCache> cache(new QueryCache(std::move(options)));
  const auto interval =
      std::chrono::milliseconds(static_cast<int64_t>(cache->options_.reclaim_interval_s * 1000));
  cache->reclaimer_ = std::make_unique<PeriodicTask>("reclaim", interval, [c = cache.get()] {
    auto st = c->ReclaimExpired();
    if (!st.ok()) spdlog::warn("reclaiming expired results: {}", st.status().ToString());
  });
  return cache;
}

void QueryCache::Shutdown() {
  stopping_ = true;
  threads_cv_.notify_all();
  WakeWaiters();
  std::lock_guard<std::mutex> lock(threads_mutex_);
  // Interrupt queries still running on their databases, and end their fills now: a driver
  // may not support cancellation, and readers must not wait for it.
  for (auto* stream : running_streams_) stream->Cancel();
  for (const auto& fill : live_fills_) {
    fill->StopCaching("server is shutting down");
    fill->Finish(arrow::Status::Cancelled("server is shutting down"));
  }
}

bool QueryCache::WaitForFills(double timeout_s) {
  std::unique_lock<std::mutex> lock(threads_mutex_);
  return threads_cv_.wait_for(lock,
                              std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)),
                              [&] { return running_fills_ == 0; });
}

QueryCache::~QueryCache() {
  Shutdown();
  if (reclaimer_) reclaimer_->Stop();
  std::unique_lock<std::mutex> lock(threads_mutex_);
  threads_cv_.wait(lock, [&] { return running_fills_ == 0; });
}

std::mutex& QueryCache::KeyMutex(const std::string& key) {
  return key_mutexes_[std::hash<std::string>{}(key) % key_mutexes_.size()];
}

void QueryCache::Count(int64_t QueryStats::*field, int64_t n) {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  stats_.*field += n;
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
  const SourceSpec& spec = plan.source->spec();
  const double stale = request.stale_while_revalidate_s.value_or(spec.stale_while_revalidate_s);
  if (!(stale >= 0) || std::isinf(stale)) {
    return arrow::Status::Invalid("stale_while_revalidate_s must be a number >= 0, got ", stale);
  }
  plan.stale_s = std::min(stale, MaxStaleWhileRevalidate(spec));
  plan.early_refresh_beta = spec.early_refresh_beta;

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

arrow::Result<QueryResponse> QueryCache::ExecuteBypass(const QueryPlan& plan) {
  QueryResponse response;
  response.key = plan.key;
  response.kind = QueryResponse::Kind::kBypass;
  response.reason = plan.bypass_reason;
  response.node = options_.fills->node();
  auto fill = std::make_shared<Fill>(plan.key, /*joinable=*/false, options_.fill_memory_bytes);
  response.reader = *fill->Attach();
  response.fill = fill;
  Count(&QueryStats::bypasses);
  const int64_t now = options_.clock->NowMillis();
  StartThread([this, plan, fill, now] {
    RunLeader(plan, fill, std::nullopt, now, /*cacheable=*/false);
  });
  return response;
}

arrow::Result<bool> QueryCache::TryHit(const QueryPlan& plan, QueryResponse* response,
                                       bool allow_stale) {
  const std::string index_key = kQueryKeyPrefix + plan.key;
  ARROW_ASSIGN_OR_RAISE(auto entry, options_.entries->Open(index_key, std::nullopt, true));
  bool stale = false;
  if (!entry && allow_stale && plan.stale_s > 0) {
    ARROW_ASSIGN_OR_RAISE(entry, OpenStale(plan));
    stale = entry && entry->meta.expired(options_.clock->NowMillis());
  }
  if (!entry) return false;  // absent or expired
  options_.evictor->CountRead(index_key);
  Count(&QueryStats::hits);
  if (stale) Count(&QueryStats::stale_hits);
  response->kind = QueryResponse::Kind::kHit;
  response->stale = stale;
  response->node = entry->meta.node;
  response->created_ms = entry->meta.created_ms;
  response->expires_ms = entry->meta.expires_ms;
  response->exec_ms = entry->meta.cost_ms;
  response->hit = std::move(entry);
  return true;
}

arrow::Result<QueryResponse> QueryCache::Execute(const QueryPlan& plan) {
  if (stopping_) return arrow::Status::Cancelled("server is shutting down");
  if (!plan.bypass_reason.empty()) return ExecuteBypass(plan);
  QueryResponse response;
  response.key = plan.key;
  // Most requests are hits: looked up without the key's lock, which other keys share. A
  // result within its stale window is a hit too, and so is one being refreshed: a fill
  // registered for a key with a current result is its background refresh.
  std::optional<arrow::Result<bool>> looked = TryHit(plan, &response, /*allow_stale=*/true);
  if (looked->ok() && **looked) {
    MaybeRefresh(plan, &response);
    return response;
  }
  std::lock_guard<std::mutex> lock(KeyMutex(plan.key));
  // A fill registered here first: joining it is what makes the flight single. A fill that
  // finished streaming stays registered until its commit; once published, serve that.
  if (auto slot = options_.fills->Find(plan.key)) {
    if (JoinLocal(plan, *slot, &response)) return response;
    looked.reset();  // that fill cannot be joined: look again
  }
  // A result published since the lookup above is found after the lease is won (StartMiss).
  auto hit = looked ? std::move(*looked) : TryHit(plan, &response);
  const bool unavailable = !hit.ok() && IsIndexUnavailable(hit.status());
  if (!hit.ok() && !(unavailable && FailOpen())) return hit.status();
  if (hit.ok() && *hit) return response;
  ARROW_RETURN_NOT_OK(StartMiss(plan, !unavailable, &response));
  return response;
}

bool QueryCache::JoinLocal(const QueryPlan& plan, const FillSlot& slot, QueryResponse* response) {
  if (slot.fill->finished()) {
    auto hit = TryHit(plan, response);
    if (hit.ok() && *hit) return true;
  }
  auto reader = slot.fill->Attach();
  if (!reader) return false;
  Count(&QueryStats::joins);
  const int64_t now = options_.clock->NowMillis();
  response->joined = true;
  response->node = slot.filler;
  response->fill = slot.fill;
  response->reader = *reader;
  response->created_ms = now;
  response->expires_ms = now + static_cast<int64_t>(plan.ttl_s * 1000);
  return true;
}

arrow::Status QueryCache::StartMiss(const QueryPlan& plan, bool index_available,
                                    QueryResponse* response) {
  const int64_t now = options_.clock->NowMillis();
  auto fill = std::make_shared<Fill>(plan.key, /*joinable=*/true, options_.fill_memory_bytes);
  FillSlot slot{fill, FillRole::kUncached, std::nullopt, options_.fills->node()};
  std::optional<LeaseHolder> other;
  if (index_available) {
    auto grant = options_.fills->Acquire(plan.key);
    if (!grant.ok() && !(IsIndexUnavailable(grant.status()) && FailOpen())) {
      return grant.status();
    }
    index_available = grant.ok();
    if (grant.ok() && grant->acquired) {
      slot.role = FillRole::kLeader;
      slot.lease = LeaseRef{FillGroup::LeaseName(plan.key), grant->token};
      // Another node's publish, which released the lease, may have landed between the
      // lookup and the grant: serve it rather than execute again.
      auto hit = TryHit(plan, response);
      if (hit.ok() && *hit) {
        auto released = options_.entries->index()->ReleaseLease(*slot.lease);
        if (!released.ok()) spdlog::debug("releasing an unused fill lease: {}", released.ToString());
        return arrow::Status::OK();
      }
    } else if (grant.ok() && !options_.fills->FindLed(plan.key, grant->holder.token)) {
      // Another node's fill -- or a previous run of this node's, which ends with its lease.
      slot.role = FillRole::kFollower;
      slot.filler = grant->holder.owner;
      other = grant->holder;
    } else if (grant.ok()) {
      // This node's own fill of the key cannot be joined (its result outgrew
      // max_entry_bytes, or what it keeps in memory for joiners when it has no local file):
      // execute alone, leaving that fill and its lease alone.
      fill->StopCaching("this node's running fill of it cannot be joined; executed without "
                        "caching");
    }
  }
  if (!index_available) fill->NotCaching("the index is unavailable; executed without caching");
  response->reader = *fill->Attach();
  response->fill = fill;
  response->joined = slot.role == FillRole::kFollower;
  response->node = slot.filler;
  response->created_ms = now;
  response->expires_ms = now + static_cast<int64_t>(plan.ttl_s * 1000);
  // Following another node's fill is joining a fill already running (in the cluster).
  Count(other ? &QueryStats::joins : &QueryStats::misses);
  if (other) {
    options_.fills->Register(plan.key, slot);
    StartThread([this, plan, fill, holder = *other, now] {
      RunFollower(plan, fill, holder, now);
    });
    return arrow::Status::OK();
  }
  // While the index is away, this node's requests still share one execution; otherwise
  // the key's slot belongs to the fill that holds the lease.
  if (slot.role == FillRole::kLeader || !index_available) options_.fills->Register(plan.key, slot);
  StartThread([this, plan, fill, lease = slot.lease, now] {
    RunLeader(plan, fill, lease, now, /*cacheable=*/true);
  });
  return arrow::Status::OK();
}

void QueryCache::StartThread(std::function<void()> body) {
  {
    std::lock_guard<std::mutex> lock(threads_mutex_);
    ++running_fills_;
  }
  std::thread([this, body = std::move(body)] {
    body();
    std::lock_guard<std::mutex> lock(threads_mutex_);
    --running_fills_;
    threads_cv_.notify_all();
  }).detach();
}

arrow::Result<std::pair<std::shared_ptr<Fill>, int>> QueryCache::JoinForPeer(
    const std::string& key, uint64_t token) {
  auto fill = options_.fills->FindLed(key, token);
  if (!fill) {
    return arrow::Status::KeyError("this node runs no fill of ", key.substr(0, 12),
                                   " under lease token ", token);
  }
  auto reader = fill->Attach();
  if (!reader) {
    return arrow::Status::KeyError("the fill of ", key.substr(0, 12),
                                   " can no longer be joined");
  }
  // Not a client's join: the node that follows counted its clients.
  return std::make_pair(fill, *reader);
}

void QueryCache::OnFillEnded(const std::string& index_key) {
  const std::string_view prefix(kQueryKeyPrefix);
  if (!index_key.starts_with(prefix)) return;
  {
    std::lock_guard<std::mutex> lock(wait_mutex_);
    auto it = waits_.find(index_key.substr(prefix.size()));
    if (it == waits_.end()) return;  // nobody here waits for it
    ++it->second.ends;
  }
  wait_cv_.notify_all();
}

void QueryCache::WakeWaiters() {
  {
    std::lock_guard<std::mutex> lock(wait_mutex_);
    ++wake_all_;
  }
  wait_cv_.notify_all();
}

arrow::Result<int64_t> QueryCache::ReclaimExpired() {
  const int64_t now = options_.clock->NowMillis();
  int64_t removed = 0;
  LeaseRunOptions lease;  // one node a round is enough
  lease.name = "reclaim";
  lease.node = options_.fills->node();
  lease.ttl_ms = 10'000;
  ARROW_RETURN_NOT_OK(RunUnderLease(options_.entries->index(), lease, [&](const LeaseRef&) {
                        ARROW_ASSIGN_OR_RAISE(removed, ReclaimExpiredAt(now));
                        return arrow::Status::OK();
                      }).status());
  return removed;
}

arrow::Result<int64_t> QueryCache::ReclaimExpiredAt(int64_t now) {
  ARROW_ASSIGN_OR_RAISE(auto entries, options_.entries->index()->ListLatest(kQueryKeyPrefix));
  int64_t removed = 0;
  for (const auto& item : entries) {
    // A result inside the stale window its source allows may still be served (and stays).
    const int64_t keep_ms = StaleKeepMillis(item.latest);
    if (!item.latest.expired(now - keep_ms)) continue;
    RemoveRequest request(item.latest.key);
    request.only_if_expired_at = now - keep_ms;  // a fresh refill published meanwhile stays
    ARROW_ASSIGN_OR_RAISE(auto gone, options_.entries->Remove(request));
    removed += gone.empty() ? 0 : 1;
  }
  if (removed > 0) {
    Count(&QueryStats::reclaimed, removed);
    spdlog::info("reclaimed {} expired query results", removed);
  }
  return removed;
}

void QueryCache::RestoreCounters(const QueryStats& saved) {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  for (auto field : {&QueryStats::hits, &QueryStats::misses, &QueryStats::joins,
                     &QueryStats::bypasses, &QueryStats::executions, &QueryStats::failures,
                     &QueryStats::not_cached, &QueryStats::reclaimed, &QueryStats::remote_joins,
                     &QueryStats::waits, &QueryStats::takeovers, &QueryStats::fenced,
                     &QueryStats::stale_hits, &QueryStats::refreshes,
                     &QueryStats::early_refreshes}) {
    stats_.*field += saved.*field;
  }
}

QueryStats QueryCache::Stats() const {
  std::lock_guard<std::mutex> lock(stats_mutex_);
  return stats_;
}

}  // namespace quiver
