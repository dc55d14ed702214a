// RedisIndex: the Index shared by the nodes of one cache, in Redis, Valkey or Dragonfly.
//
// Every key of a cache lives under one hash tag, "{PREFIX}:...", so the scripts that check
// and publish atomically work on Redis Cluster and Dragonfly too, and several caches can share
// one server under different prefixes. Each atomic step -- publish, remove, bump-and-collect,
// lease acquire/renew/release, restore -- is one Lua script (EVALSHA) that touches only keys
// passed in KEYS. The layout is written down in docs/design/redis_schema.md.
//
// Reads count towards eviction scores asynchronously, off the hit path: Touch() buffers and
// wakes a sender thread, which sends what accumulated in one pipelined round trip (so under
// load many reads share one trip). A read is counted within about a round trip of it.
//
// Health: a call that cannot reach the server returns IndexUnavailable and marks the index
// unavailable; the first success after that reads whether the server kept its data, and only
// that read, once it succeeds, marks the index available (or being rebuilt) again; each
// change is logged once. A
// server that lost its data (restarted without persistence) answers "not ready" until a node
// rebuilds the index from the manifests (NeedsRebuild / MarkRebuilt); until then publishing
// and reading return IndexUnavailable too.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/periodic.h"
#include "index/index.h"
#include "redis/redis_client.h"

namespace quiver {

struct RedisIndexOptions {
  redis::ConnectOptions connect;
  /// Prefix of every key (the hash tag), e.g. "quiver".
  std::string prefix = "quiver";
  /// This node's id, for the log and rebuild records.
  std::string node;
  /// Generations remembered before the oldest are forgotten (index.h). Default: 2^20.
  size_t max_generations = size_t{1} << 20;
  /// Buffered reads are sent at once in the background, and at least this often; 0: sent by
  /// the reading thread itself (synchronous). Default: 100 ms.
  std::chrono::milliseconds touch_flush_interval{100};
};

/// The Redis key names of one cache. The fixed ones are made once, not per call.
class RedisKeys {
 public:
  explicit RedisKeys(const std::string& prefix)
      : base_("{" + prefix + "}:"),
        meta_(base_ + "meta"),
        stats_(base_ + "stats"),
        keys_(base_ + "keys"),
        score_(base_ + "score"),
        gen_(base_ + "gen"),
        settings_(base_ + "settings"),
        events_(base_ + "events") {}
  const std::string& meta() const { return meta_; }
  const std::string& stats() const { return stats_; }
  const std::string& keys() const { return keys_; }
  const std::string& score() const { return score_; }
  const std::string& gen() const { return gen_; }
  const std::string& settings() const { return settings_; }
  const std::string& events() const { return events_; }
  std::string entry(const std::string& key) const { return base_ + "e:" + key; }
  std::string dep(const std::string& key) const { return base_ + "dep:" + key; }
  std::string tag(const std::string& tag) const { return base_ + "tag:" + tag; }
  std::string lease(const std::string& name) const { return base_ + "lease:" + name; }

 private:
  std::string base_;
  std::string meta_, stats_, keys_, score_, gen_, settings_, events_;
};

class RedisIndex final : public Index {
 public:
  /// \brief Connect to the server. An unreachable server is not an error (the index is
  /// unavailable until it answers); a refused password or database is.
  static arrow::Result<std::shared_ptr<RedisIndex>> Open(RedisIndexOptions options);
  /// Sends buffered reads, stops the subscriber.
  ~RedisIndex() override;

  arrow::Result<std::optional<EntryMeta>> Get(const std::string& key,
                                              std::optional<uint64_t> version) override;
  arrow::Result<std::vector<std::optional<EntryMeta>>> GetMany(
      const std::vector<std::pair<std::string, uint64_t>>& versions) override;
  /// A request without the expected version's links (expected_depends_on, expected_tags)
  /// costs one more read and script run: the script checks them and asks for them.
  arrow::Result<PublishOutcome> Publish(const PublishRequest& request) override;
  arrow::Result<std::vector<EntryMeta>> Remove(const RemoveRequest& request) override;
  arrow::Result<std::vector<EntryMeta>> Trim(const std::string& key, int64_t keep) override;
  arrow::Result<std::vector<IndexedKey>> ListLatest(const std::string& prefix) override;
  arrow::Result<std::vector<std::string>> KeysUnder(const std::string& prefix) override;
  arrow::Result<IndexStats> Stats() override;
  arrow::Result<IndexStats> TenantStats(const std::string& tenant) override;

  arrow::Result<GenerationSnapshot> Snapshot() override;
  arrow::Result<std::vector<std::string>> BumpAndCollect(
      const std::vector<std::string>& keys, const std::vector<std::string>& tags) override;
  arrow::Result<std::vector<std::string>> Dependents(const std::string& key) override;
  arrow::Result<std::vector<std::string>> KeysWithTag(const std::string& tag) override;

  arrow::Status Touch(const std::vector<std::pair<std::string, int64_t>>& counts,
                      int64_t now_ms, const ScoringPolicy& scoring) override;
  arrow::Result<std::optional<KeyUsage>> Usage(const std::string& key) override;
  arrow::Result<std::vector<std::pair<std::string, KeyUsage>>> LowestScored(
      int64_t offset, int64_t limit) override;

  arrow::Result<std::map<std::string, std::string>> GetSettings() override;
  arrow::Status SetSettings(const std::map<std::string, std::string>& settings) override;

  arrow::Result<LeaseGrant> AcquireLease(const std::string& name, const std::string& owner,
                                         const std::string& endpoint, int64_t ttl_ms) override;
  arrow::Result<bool> RenewLease(const LeaseRef& lease, int64_t ttl_ms) override;
  arrow::Status ReleaseLease(const LeaseRef& lease) override;
  arrow::Result<std::optional<LeaseHolder>> GetLease(const std::string& name) override;

  arrow::Status Restore(const EntryMeta& entry, const ScoringPolicy& scoring) override;
  arrow::Result<bool> NeedsRebuild() override;
  arrow::Status MarkRebuilt() override;

  arrow::Status Announce(const IndexEvent& event) override;
  void Subscribe(std::function<void(const IndexEvent&)> on_event,
                 std::function<void(bool resubscribed)> on_connection) override;
  /// The secret is kept once read; `refresh` reads it again, at most once a second (a
  /// refused ticket, forged or not, must not cost a round trip each).
  arrow::Result<std::string> ClusterSecret(bool refresh) override;

  IndexHealth Health() override;
  bool shared() const override { return true; }
  std::string Describe() const override;

  /// \brief Send buffered reads now (also every touch_flush_interval).
  arrow::Status FlushTouches();

 private:
  enum class HealthState { kOk, kUnavailable, kRebuilding };

  explicit RedisIndex(RedisIndexOptions options);

  // redis_index.cc: calls, health, entries.
  /// Run a script; an error reply comes back as a status naming `what`.
  arrow::Result<redis::Reply> Run(const redis::Script& script, std::vector<std::string> keys,
                                  std::vector<std::string> args, const char* what);
  /// Run a script once per call, pipelined (in batches); likewise.
  arrow::Result<std::vector<redis::Reply>> RunPipelined(const redis::Script& script,
                                                        std::vector<redis::Script::Call> calls,
                                                        const char* what);
  arrow::Result<redis::Reply> Command(const std::vector<std::string>& argv);
  arrow::Result<std::vector<redis::Reply>> Pipeline(
      const std::vector<std::vector<std::string>>& commands);
  /// Map a call's outcome to the index's health and statuses.
  arrow::Status Track(const arrow::Status& status);
  /// Reachable again: whether it serves depends on whether it kept its data.
  void RecheckReadiness();
  arrow::Status ReplyError(const redis::Reply& reply, const char* what);
  void SetHealth(HealthState state, std::string detail);
  /// A call that checks readiness succeeded: the index serves.
  void MarkReady();
  /// The answer to HGET meta ready: true (and healthy) if the index serves.
  arrow::Result<bool> Ready(const redis::Reply& reply);
  arrow::Result<std::vector<EntryMeta>> ParseMetas(const redis::Reply& reply, size_t from);
  void AddLinkKeys(const std::vector<std::string>& depends_on,
                   const std::vector<std::string>& tags, std::vector<std::string>* keys) const;
  /// The KEYS and ARGV publish and restore share (redis_scripts.cc): `entry` becomes a
  /// version of its key, replacing a latest linked to `old_depends_on` and `old_tags`.
  /// `own_keys` come after the shared KEYS, before the link sets.
  redis::Script::Call VersionCall(const EntryMeta& entry,
                                  const std::vector<std::string>& old_depends_on,
                                  const std::vector<std::string>& old_tags,
                                  const ScoringPolicy& scoring,
                                  std::initializer_list<std::string> own_keys) const;
  arrow::Result<redis::Reply> RunPublish(const PublishRequest& request,
                                         const std::vector<std::string>& old_depends_on,
                                         const std::vector<std::string>& old_tags);
  arrow::Result<PublishOutcome> ParsePublishReply(const redis::Reply& reply);
  arrow::Result<std::vector<EntryMeta>> RemoveOnce(const RemoveRequest& request,
                                                   const std::optional<EntryMeta>& latest,
                                                   bool* conflict);
  /// The policy reads and writes are scored with, kept for trims and batched reads.
  /// REQUIRES: touch_mutex_ held.
  void UseScoringLocked(const ScoringPolicy& scoring);

  // redis_index_usage.cc: use, settings, leases, nodes.
  arrow::Result<std::optional<KeyUsage>> ParseUsage(const redis::Reply& reply,
                                                    EntryMeta* latest);

  const RedisIndexOptions options_;
  const RedisKeys names_;
  redis::ConnectionPool pool_;

  // The state is read on every call without the lock; the detail only with it.
  std::atomic<HealthState> health_state_{HealthState::kOk};
  mutable std::mutex health_mutex_;
  std::string health_detail_;                               // guarded by health_mutex_
  std::chrono::steady_clock::time_point unavailable_since_;  // guarded by health_mutex_

  std::mutex touch_mutex_;
  std::map<std::string, int64_t> pending_touches_;  // guarded by touch_mutex_
  int64_t touch_now_ms_ = 0;                        // guarded by touch_mutex_
  ScoringPolicy scoring_;                           // guarded by touch_mutex_
  std::unique_ptr<PeriodicTask> touch_flusher_;

  std::mutex secret_mutex_;
  std::string secret_;                                // guarded by secret_mutex_
  std::chrono::steady_clock::time_point secret_read_;  // guarded by secret_mutex_
  std::unique_ptr<redis::Subscriber> subscriber_;
};

}  // namespace quiver
