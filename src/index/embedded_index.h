// EmbeddedIndex: the in-process Index, for one node that owns its data dir.
//
// Versions are kept packed (index/packed_entry.h, ~65 bytes each) and unpacked on reads.
// Under one reader-writer lock: the eviction queue (policy/eviction_queue.h), which holds
// every key once -- its access history, score and, as the queue entry's payload, its
// versions (index/version_list.h) -- with the keys in score order beside it; dependency and
// tag edges; a GenerationTable and a LeaseTable. About 270 bytes a key with one version. It starts empty and is loaded from its journal
// (LoadRecovered, index/index_journal.h) or rebuilt from the manifests at startup
// (NeedsRebuild() is true until MarkRebuilt()); with a journal attached every change is
// appended to it. Access histories and settings live in memory; the engine saves them to the
// data dir (cache/local_state.h).
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <shared_mutex>

#include "common/clock.h"
#include "index/generation_table.h"
#include "index/index.h"
#include "index/index_journal.h"
#include "index/lease_table.h"
#include "index/packed_entry.h"
#include "index/version_list.h"
#include "policy/eviction_queue.h"

namespace quiver {

/// One key's access history as saved across restarts (the policy's fields of PolicyEntry:
/// accesses, log_weight, last_tick; bytes and cost come from the stored entry).
struct UsageRecord {
  std::string key;
  PolicyEntry history;
  int64_t last_access_ms = 0;
};

/// Every key's access history and the access counter they are relative to.
struct UsageSnapshot {
  uint64_t tick = 0;
  std::vector<UsageRecord> records;
  /// The cache's counters (puts, gets, hits, ...) by name, saved with the histories so
  /// that `stats` continues them after a restart.
  std::map<std::string, int64_t> counters;
};

class EmbeddedIndex final : public Index {
 public:
  explicit EmbeddedIndex(std::shared_ptr<Clock> clock = Clock::System(),
                         size_t max_generations = size_t{1} << 20);

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

  arrow::Status Announce(const IndexEvent&) override { return arrow::Status::OK(); }
  void Subscribe(std::function<void(const IndexEvent&)>, std::function<void(bool)>) override {}
  arrow::Result<std::string> ClusterSecret(bool) override { return secret_; }
  IndexHealth Health() override { return {}; }
  bool shared() const override { return false; }
  std::string Describe() const override { return "embedded"; }

  /// \brief Every key's access history, for saving (in key order).
  UsageSnapshot ExportUsage() const;
  /// \brief Give the keys known now the history `saved` has for them, and continue the
  /// access counter from it. Keys it does not cover (stored after it was taken) count as
  /// accessed now. Returns how many keys were restored.
  int64_t RestoreUsage(const UsageSnapshot& saved);
  /// \brief The access counter; it changes with every publish and read.
  uint64_t usage_tick() const;

  /// \brief Record every later change in `journal` (not owned; outlives the index).
  void AttachJournal(IndexJournal* journal);
  /// \brief Load the versions a journal recovered (by key, then version) into an empty
  /// index, as Restore() would one by one, with the access histories `usage` (may be
  /// null) has for them, as RestoreUsage() would; keys it does not cover count as accessed
  /// in creation order. Returns how many histories were restored.
  arrow::Result<int64_t> LoadRecovered(std::vector<RecoveredEntry> entries,
                                       const ScoringPolicy& scoring,
                                       const UsageSnapshot* usage = nullptr);
  /// \brief Write the whole index as the journal's next snapshot (see IndexJournal);
  /// `flush` makes the data it names durable first.
  arrow::Status Checkpoint(const std::function<arrow::Status()>& flush);

 private:
  /// What the index keeps of a key beside its access history (the queue's; its bytes are
  /// those of all of the key's versions).
  struct KeyState {
    VersionList versions;  // never empty while the key is in the queue
    int64_t last_access_ms = 0;
  };
  using Queue = BasicEvictionQueue<KeyState>;

  /// Why `request` cannot be published now (refusal kNone if it can).
  PublishOutcome CheckLocked(const PublishRequest& request, const KeyState* state);
  /// Add (`link`) or drop `key`'s dependency and tag edges, those of its `latest` version.
  void LinkLocked(const std::string& key, const PackedEntry& latest, bool link);
  /// Drop the oldest versions of `key`'s `state` beyond `keep`, taking their bytes off
  /// `*key_bytes`; returns them.
  std::vector<EntryMeta> TrimLocked(const std::string& key, KeyState* state, int64_t keep,
                                    int64_t* key_bytes);
  /// The bytes of the versions of `state` beyond its newest `keep`.
  static int64_t TrimmedBytes(const KeyState& state, int64_t keep);
  /// Add to the totals (and to `tenant`'s, EntryTenant of the key's entries; "": none).
  void CountLocked(const std::string& tenant, int64_t keys, int64_t versions, int64_t bytes);
  /// Whether a publish taking totals `now` to (`bytes_after`, `keys_after`) breaks `limits`.
  static bool OverBudget(const BudgetLimits& limits, const IndexStats& now, int64_t bytes_after,
                         int64_t keys_after);
  void UsePolicyLocked(const ScoringPolicy& scoring);
  static KeyUsage UsageOf(const Queue::Item& item);

  std::shared_ptr<Clock> clock_;
  const std::string secret_;
  mutable std::shared_mutex mutex_;
  IndexStats stats_;
  std::unordered_map<std::string, IndexStats> tenant_stats_;  // EntryTenant -> its keys, bytes
  std::map<std::string, std::set<std::string>> dependents_;  // dependency -> keys
  std::map<std::string, std::set<std::string>> tagged_;      // tag -> keys
  GenerationTable generations_;
  LeaseTable leases_;
  ScoringPolicy scoring_;
  Queue queue_;  // every key, its versions and access history
  std::map<std::string, std::string> settings_;
  bool rebuilt_ = false;
  IndexJournal* journal_ = nullptr;
};

}  // namespace quiver
