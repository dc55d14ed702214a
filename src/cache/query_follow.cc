// QueryCache: following a fill that another node runs.
//
// The follower's fill is registered on this node like any other, so this node's clients join
// it. It is fed by the filling node's live stream (a cross-node join), or -- if that node
// cannot be reached before anything arrived -- by the stored result once the filling node
// publishes it. If the filling node's lease expires without a result (it died, or lost its
// lease), one follower in the cluster takes the lease and executes the query itself.
#include <atomic>
#include <chrono>

#include <spdlog/spdlog.h>

#include "cache/fill_pump.h"
#include "cache/query_cache.h"
#include "common/periodic.h"
#include "format/stored_stream.h"

namespace quiver {

void QueryCache::RunFollower(const QueryPlan& plan, const std::shared_ptr<Fill>& fill,
                             LeaseHolder holder, int64_t created_ms) {
  {
    std::lock_guard<std::mutex> lock(threads_mutex_);
    live_fills_.insert(fill);
  }
  bool waited = false;
  while (true) {
    if (stopping_) return EndFill(plan, fill, arrow::Status::Cancelled("server is shutting down"));
    if (fill->Abandoned()) {
      return EndFill(plan, fill, arrow::Status::Cancelled("every reader went away"));
    }
    if (options_.peers && !holder.endpoint.empty() && holder.owner != options_.fills->node()) {
      arrow::Status failure;
      switch (Mirror(plan, fill.get(), holder, &failure)) {
        case Follow::kDone:
          return EndFill(plan, fill, arrow::Status::OK());
        case Follow::kFailed:
          return EndFill(plan, fill, failure);
        case Follow::kNotJoinable: {
          // The holder's fill cannot be joined any more: it outgrew max_entry_bytes (it will
          // not be published, and waiting for its lease would only delay an execution here),
          // or what it keeps in memory for joiners (it has no local file; executing here
          // too is what a request on its own node does). Otherwise it ended or the lease
          // moved on, and the wait below finds the result or the new holder at once.
          auto current = options_.fills->Holder(plan.key);
          if (current.ok() && *current && (*current)->token == holder.token &&
              !Published(plan)) {
            return RunUnjoinable(plan, fill, holder, created_ms);
          }
          break;
        }
        case Follow::kUnreachable:
          break;  // wait for it to be published instead
      }
    }
    if (!waited) Count(&QueryStats::waits);
    waited = true;
    std::optional<OpenEntry> entry;
    switch (WaitForOther(plan, fill.get(), &holder, &entry)) {
      case Wait::kStopped:
        continue;  // the loop's checks end it
      case Wait::kNewHolder:
        continue;
      case Wait::kPublished:
        return EndFill(plan, fill, FeedStored(fill.get(), *entry));
      case Wait::kIndexAway:
        return RunWithoutIndex(plan, fill, created_ms);
      case Wait::kLeaseFree:
        break;
    }
    auto grant = options_.fills->Acquire(plan.key);
    if (!grant.ok() && IsIndexUnavailable(grant.status())) {
      return RunWithoutIndex(plan, fill, created_ms);
    }
    if (!grant.ok()) return EndFill(plan, fill, grant.status());
    if (!grant->acquired) {
      holder = grant->holder;
      continue;
    }
    // The filling node's lease expired without a result: this node executes the query.
    Count(&QueryStats::takeovers);
    spdlog::info("query {}: {}'s fill lease expired without a result; taking the fill over",
                 plan.key.substr(0, 12), holder.owner);
    LeaseRef lease{FillGroup::LeaseName(plan.key), grant->token};
    options_.fills->Register(plan.key,
                             FillSlot{fill, FillRole::kLeader, lease, options_.fills->node()});
    {
      std::lock_guard<std::mutex> lock(threads_mutex_);
      live_fills_.erase(fill);
    }
    return RunLeader(plan, fill, lease, created_ms, /*cacheable=*/true);
  }
}

void QueryCache::RunWithoutIndex(const QueryPlan& plan, const std::shared_ptr<Fill>& fill,
                                 int64_t created_ms) {
  auto away = IndexUnavailable("the index is unavailable while waiting for another node's fill");
  if (!FailOpen()) return EndFill(plan, fill, away);
  spdlog::warn("query {}: {}; executing it here, uncached", plan.key.substr(0, 12),
               away.message());
  // Still registered: this node's requests share this one execution.
  fill->NotCaching("the index is unavailable; executed without caching");
  {
    std::lock_guard<std::mutex> lock(threads_mutex_);
    live_fills_.erase(fill);
  }
  RunLeader(plan, fill, std::nullopt, created_ms, /*cacheable=*/true);
}

void QueryCache::RunUnjoinable(const QueryPlan& plan, const std::shared_ptr<Fill>& fill,
                               const LeaseHolder& holder, int64_t created_ms) {
  spdlog::info("query {}: {}'s fill can no longer be joined; executing it here, uncached",
               plan.key.substr(0, 12), holder.owner);
  fill->StopCaching("the node running it streams it to no other node; executed without "
                    "caching");
  {
    std::lock_guard<std::mutex> lock(threads_mutex_);
    live_fills_.erase(fill);
  }
  RunLeader(plan, fill, std::nullopt, created_ms, /*cacheable=*/true);
}

QueryCache::Follow QueryCache::Mirror(const QueryPlan& plan, Fill* fill,
                                      const LeaseHolder& holder, arrow::Status* failure) {
  auto peer = options_.peers->JoinFill(holder.endpoint, plan.key, holder.token);
  if (!peer.ok()) return PeerRefused(plan, holder, peer.status(), failure);
  // A filling node that stops answering (paused, partitioned) leaves the stream hanging:
  // stop following once its lease has moved on, or nobody reads any more.
  std::atomic<bool> lease_moved{false};
  PeriodicTask watcher("follow " + plan.key.substr(0, 12),
                       std::chrono::milliseconds(options_.fill_poll_ms), [&] {
                         if (lease_moved) return;
                         auto current = options_.fills->Holder(plan.key);
                         // A lease released because the fill was published is not a lease
                         // that moved on: the stream is about to end.
                         const bool moved =
                             current.ok() && ((*current && (*current)->token != holder.token) ||
                                              (!*current && !Published(plan)));
                         if (moved || stopping_ || fill->Abandoned()) {
                           lease_moved = moved;
                           (*peer)->Cancel();
                         }
                       });
  const Follow result = MirrorStream(plan, fill, peer->get(), holder, failure);
  watcher.Stop();
  if (result == Follow::kUnreachable && lease_moved) {
    spdlog::info("query {}: {} stopped answering and its lease moved on; nothing was streamed "
                 "yet, waiting for the fill",
                 plan.key.substr(0, 12), holder.owner);
  }
  return result;
}

QueryCache::Follow QueryCache::PeerRefused(const QueryPlan& plan, const LeaseHolder& holder,
                                           const arrow::Status& status,
                                           arrow::Status* failure) {
  // Cancelled: by the watcher. Index unavailable: the cluster secret could not be read.
  if (IsPeerUnreachable(status) || status.IsCancelled() || IsIndexUnavailable(status)) {
    spdlog::info("query {}: cannot stream {}'s fill ({}); waiting for its result",
                 plan.key.substr(0, 12), holder.owner, status.message());
    return Follow::kUnreachable;
  }
  if (status.IsKeyError()) return Follow::kNotJoinable;
  // The fill's own end: its readers on every node get the same.
  *failure = status;
  spdlog::warn("query {}: {}'s fill failed: {}", plan.key.substr(0, 12), holder.owner,
               status.ToString());
  return Follow::kFailed;
}

QueryCache::Follow QueryCache::MirrorStream(const QueryPlan& plan, Fill* fill, PeerFill* peer,
                                            const LeaseHolder& holder, arrow::Status* failure) {
  const int64_t before = fill->appended();
  auto started = peer->Start();
  if (!started.ok()) return PeerRefused(plan, holder, started, failure);
  Count(&QueryStats::remote_joins);
  {
    std::lock_guard<std::mutex> lock(threads_mutex_);
    running_streams_.insert(peer);
  }
  PumpResult pumped = PumpStream(peer, fill, nullptr, [&](bool) {
    // The filling node does not cache a result this large: this node's readers hear it too.
    if (fill->appended_bytes() > options_.max_entry_bytes) fill->NotCaching(kTooLargeToCache);
    return StopReason(fill, /*storing=*/false);
  });
  {
    std::lock_guard<std::mutex> lock(threads_mutex_);
    running_streams_.erase(peer);
  }
  if (pumped.status.ok()) return Follow::kDone;
  const bool ours = stopping_ || fill->Abandoned();
  // Nothing reached the readers yet, and the node went away: they can still get the whole
  // result another way.
  if (fill->appended() == before && !ours &&
      (IsPeerUnreachable(pumped.status) || pumped.status.IsCancelled())) {
    return Follow::kUnreachable;
  }
  *failure = pumped.status.IsCancelled() && ours
                 ? pumped.status
                 : arrow::Status::IOError("the node filling this query (", holder.owner,
                                          ") failed mid-stream: ", pumped.status.message());
  spdlog::warn("query {}: {}", plan.key.substr(0, 12), failure->ToString());
  return Follow::kFailed;
}

bool QueryCache::Published(const QueryPlan& plan) {
  auto latest = options_.entries->index()->Get(kQueryKeyPrefix + plan.key, std::nullopt);
  return latest.ok() && *latest && !(*latest)->expired(options_.clock->NowMillis());
}

QueryCache::Wait QueryCache::WaitForOther(const QueryPlan& plan, Fill* fill,
                                          LeaseHolder* holder, std::optional<OpenEntry>* entry) {
  const std::string index_key = kQueryKeyPrefix + plan.key;
  // Registered, so that announcements of this key's fill ending wake this waiter.
  std::unique_lock<std::mutex> lock(wait_mutex_);
  KeyWaits* waits = &waits_[plan.key];
  ++waits->waiters;
  lock.unlock();
  Wait result = Wait::kStopped;
  // When the index was first found away (epoch: it was not).
  std::chrono::steady_clock::time_point away_since{};
  while (!stopping_ && !fill->Abandoned()) {
    lock.lock();
    const uint64_t seen_ends = waits->ends, seen_all = wake_all_;
    lock.unlock();
    auto opened = options_.entries->Open(index_key, std::nullopt, /*promote=*/true);
    if (opened.ok() && *opened) {  // published, and fresh
      *entry = std::move(*opened);
      result = Wait::kPublished;
      break;
    }
    auto current = options_.fills->Holder(plan.key);
    if (current.ok() && !*current) {
      result = Wait::kLeaseFree;
      break;
    }
    if (current.ok() && (*current)->token != holder->token) {
      *holder = **current;
      result = Wait::kNewHolder;
      break;
    }
    // The index away for as long as a lease lasts: nobody can publish the result now.
    if (!current.ok() && IsIndexUnavailable(current.status())) {
      const auto now = std::chrono::steady_clock::now();
      if (away_since.time_since_epoch().count() == 0) away_since = now;
      if (now - away_since > std::chrono::milliseconds(options_.fills->lease_ttl_ms())) {
        result = Wait::kIndexAway;
        break;
      }
    } else {
      away_since = {};
    }
    lock.lock();
    wait_cv_.wait_for(lock, std::chrono::milliseconds(options_.fill_poll_ms), [&] {
      return stopping_ || waits->ends != seen_ends || wake_all_ != seen_all;
    });
    lock.unlock();
  }
  lock.lock();
  if (--waits->waiters == 0) waits_.erase(plan.key);
  return result;
}

arrow::Status QueryCache::FeedStored(Fill* fill, const OpenEntry& entry) {
  // The stored IPC messages go to the readers as they are: no decode, no re-encode.
  ARROW_ASSIGN_OR_RAISE(auto stored, StoredStream::Open(entry.file));
  fill->SetSchema(stored->schema(), stored->schema_payload());
  while (true) {
    ARROW_ASSIGN_OR_RAISE(auto payload, stored->Next());
    if (!payload) return arrow::Status::OK();
    fill->Append(std::move(*payload));
  }
}

}  // namespace quiver
