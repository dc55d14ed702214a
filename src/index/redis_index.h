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
// unavailable; the first success marks it available again; each change is logged once. A
// server that lost its data (restarted without persistence) answers "not ready" until a node
// rebuilds the index from the manifests (NeedsRebuild / MarkRebuilt); until then publishing
// and reading return IndexUnavailable too.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <chrono>
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
  /// Idle connections kept for the node's calls. Default: 16.
  size_t pool_size = 16;
  /// Generations remembered before the oldest are forgotten (index.h). Default: 2^20.
  size_t max_generations = size_t{1} << 20;
  /// Buffered reads are sent at once in the background, and at least this often; 0: sent by
  /// the reading thread itself (synchronous). Default: 100 ms.
  std::chrono::milliseconds touch_flush_interval{100};
};

/// The Redis key names of one cache.
class RedisKeys {
 public:
  explicit RedisKeys(const std::string& prefix) : base_("{" + prefix + "}:") {}
  std::string meta() const { return base_ + "meta"; }
  std::string stats() const { return base_ + "stats"; }
  std::string keys() const { return base_ + "keys"; }
  std::string score() const { return base_ + "score"; }
  std::string gen() const { return base_ + "gen"; }
  std::string settings() const { return base_ + "settings"; }
  std::string events() const { return base_ + "events"; }
  std::string entry(const std::string& key) const { return base_ + "e:" + key; }
  std::string dep(const std::string& key) const { return base_ + "dep:" + key; }
  std::string tag(const std::string& tag) const { return base_ + "tag:" + tag; }
  std::string lease(const std::string& name) const { return base_ + "lease:" + name; }

 private:
  std::string base_;
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
  arrow::Result<PublishOutcome> Publish(const PublishRequest& request) override;
  arrow::Result<std::vector<EntryMeta>> Remove(const RemoveRequest& request) override;
  arrow::Result<std::vector<EntryMeta>> Trim(const std::string& key, int64_t keep) override;
  arrow::Result<std::vector<IndexedKey>> ListLatest(const std::string& prefix) override;
  arrow::Result<std::vector<std::string>> KeysUnder(const std::string& prefix) override;
  arrow::Result<IndexStats> Stats() override;

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
  arrow::Result<std::string> ClusterSecret(bool refresh) override;

  IndexHealth Health() override;
  bool shared() const override { return true; }
  std::string Describe() const override;

  /// \brief Send buffered reads now (also every touch_flush_interval).
  arrow::Status FlushTouches();

 private:
  explicit RedisIndex(RedisIndexOptions options);

  // redis_index.cc: calls, health, entries.
  arrow::Result<redis::Reply> Run(const redis::Script& script, const std::vector<std::string>& keys,
                                  const std::vector<std::string>& args);
  arrow::Result<redis::Reply> Command(const std::vector<std::string>& argv);
  arrow::Result<std::vector<redis::Reply>> Pipeline(
      const std::vector<std::vector<std::string>>& commands);
  /// Map a call's outcome to the index's health and statuses.
  arrow::Status Track(const arrow::Status& status);
  arrow::Status ReplyError(const redis::Reply& reply, const char* what);
  void SetHealth(IndexHealth health);
  /// A call that checks readiness succeeded: the index serves.
  void MarkReady();
  arrow::Result<std::vector<EntryMeta>> ParseMetas(const redis::Reply& reply, size_t from);
  void AddLinkKeys(const EntryMeta* entry, std::vector<std::string>* keys) const;
  arrow::Result<std::vector<EntryMeta>> RemoveOnce(const RemoveRequest& request,
                                                   const std::optional<EntryMeta>& latest,
                                                   bool* conflict);

  // redis_index_usage.cc: use, settings, leases, nodes.
  arrow::Result<std::optional<KeyUsage>> ParseUsage(const redis::Reply& reply,
                                                    EntryMeta* latest);
  static std::string PolicyArg(const ScoringPolicy& scoring);
  static std::string LogMArg(const ScoringPolicy& scoring);

  const RedisIndexOptions options_;
  const RedisKeys names_;
  redis::ConnectionPool pool_;

  mutable std::mutex health_mutex_;
  IndexHealth health_;
  std::chrono::steady_clock::time_point unavailable_since_;

  std::mutex touch_mutex_;
  std::map<std::string, int64_t> pending_touches_;
  int64_t touch_now_ms_ = 0;
  ScoringPolicy scoring_;
  std::unique_ptr<PeriodicTask> touch_flusher_;

  std::mutex secret_mutex_;
  std::string secret_;
  std::unique_ptr<redis::Subscriber> subscriber_;
};

}  // namespace quiver
