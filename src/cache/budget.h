// Budget: the size limits of the store and who leaves when a new entry needs room.
//
// Tracks every key's bytes (all its versions) in an EvictionQueue ordered by the eviction
// policy's score. A writer reserves room before it publishes: the lowest-scored keys that
// must go are picked (and forgotten here) so that what is stored plus what is reserved
// stays within cache_size and max_entries; the caller removes them from storage. An entry
// larger than cache_size, or one that could only fit by evicting protected entries (those
// younger than protect_s), is not admitted.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "common/clock.h"
#include "policy/eviction_queue.h"

namespace quiver {

struct BudgetSettings {
  /// Bytes the store may hold (all versions of all entries).
  int64_t cache_size = int64_t{10} << 30;
  /// Keys the store may hold; 0: no limit. Default: 1,000,000.
  int64_t max_entries = 1'000'000;
  /// Entries younger than this are not evicted to make room. Default: 0.
  double protect_s = 0;
  /// "cost" (cachey's score) or "lru". Default: cost.
  std::string policy = "cost";
  /// Accesses over which a cost-aware weight halves. Default: 1000.
  double half_life = 1000;
};

struct KeyUsage {
  int64_t bytes = 0;
  double cost_s = 0;
  uint64_t accesses = 0;
  int64_t last_access_ms = 0;
  double score = 0;
};

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
};

class Budget {
 public:
  static arrow::Result<std::unique_ptr<Budget>> Make(BudgetSettings settings,
                                                     std::shared_ptr<Clock> clock);

  /// \brief Reserve room for `bytes` more under `key`. Returns the keys to evict (already
  /// forgotten here). CapacityError "not admitted: ..." if it cannot fit.
  arrow::Result<std::vector<std::string>> Reserve(const std::string& key, int64_t bytes);
  /// \brief Give back a reservation that will not be published.
  void Unreserve(int64_t bytes);
  /// \brief `key` was published and now holds `total_bytes`; releases `reserved`.
  void Record(const std::string& key, int64_t total_bytes, double cost_s, int64_t created_ms,
              int64_t reserved);
  /// \brief Count a read of `key`.
  void Touch(const std::string& key);
  /// \brief Forget `key` (deleted, invalidated or evicted).
  void Forget(const std::string& key);

  /// \brief Keys to remove, lowest score first, skipping protected ones: the single lowest
  /// (`below_bytes` empty), or as many as needed to get under `below_bytes`.
  std::vector<std::string> PickShrink(std::optional<int64_t> below_bytes) const;
  /// \brief Keys to remove so that what is stored fits cache_size and max_entries (after
  /// the limits were lowered). Protection does not apply.
  std::vector<std::string> PickToFit() const;
  std::optional<KeyUsage> Usage(const std::string& key) const;

  /// \brief The access history of every key, for saving.
  UsageSnapshot ExportUsage() const;
  /// \brief Give the keys known now the history `saved` has for them, and continue the
  /// access counter from it. Keys it does not cover (stored after it was taken) count as
  /// accessed now. Returns how many keys were restored.
  int64_t RestoreUsage(const UsageSnapshot& saved);
  /// \brief The global access counter; it changes with every insert and read.
  uint64_t tick() const;

  /// \brief Change settings (policy, half_life, cache_size, ...); the caller then shrinks.
  arrow::Status Configure(const BudgetSettings& settings);
  BudgetSettings settings() const;
  int64_t used_bytes() const;
  int64_t reserved_bytes() const;
  int64_t entries() const;

 private:
  Budget(BudgetSettings settings, std::shared_ptr<Clock> clock,
         std::shared_ptr<const EvictionPolicy> policy)
      : settings_(std::move(settings)), clock_(std::move(clock)), queue_(std::move(policy)) {}
  bool ProtectedLocked(const std::string& key, int64_t now) const;

  mutable std::mutex mutex_;
  BudgetSettings settings_;
  std::shared_ptr<Clock> clock_;
  EvictionQueue queue_;
  int64_t reserved_ = 0;
  std::map<std::string, int64_t> created_ms_;
  std::map<std::string, int64_t> last_access_ms_;
};

}  // namespace quiver
