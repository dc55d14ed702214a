// Evictor: the budget -- how much the cache may hold, and who leaves to make room.
//
// The budget (cache_size bytes of every kept version, max_entries keys) is the index's
// totals, so it is global when the index is shared. Before a writer publishes, MakeRoom()
// evicts the lowest-scored keys (scores live in the index, policy/eviction_policy.h) until
// the new entry fits, skipping keys younger than protect_s; the publish itself is checked
// against the limits atomically, so a writer that loses the room to another retries, and in
// the end may publish at most one entry past the limits (BudgetLimits::allow_one_over).
// Eviction runs under the index lease "evict": one node at a time evicts. Evicting an entry
// also evicts the views derived from it (cache/derived_cache.h), which only it leads to.
//
// A tenant with a budget (BudgetSettings::tenants) is held to it the same way: before one of
// its keys is published, its own lowest-scored keys are evicted until the entry fits in the
// tenant's totals (Index::TenantStats), and the publish is checked against them atomically.
// Its keys are found by listing its namespace, which only happens when it is over.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <atomic>
#include <functional>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "cache/entry_store.h"
#include "common/clock.h"
#include "common/security_config.h"

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
  /// Budgets of tenants (EntryTenant: the first segment of a three-segment key, or the
  /// tenant a query result ran for), each enforced like the global one within the tenant's
  /// entries. Default: none.
  TenantBudgets tenants;
};

class Evictor {
 public:
  static arrow::Result<std::unique_ptr<Evictor>> Make(BudgetSettings settings,
                                                      EntryStore* entries,
                                                      std::shared_ptr<Clock> clock);

  /// \brief Refuse an entry that could never fit (CapacityError "not admitted: ...").
  arrow::Status Admit(const EntryMeta& entry);
  /// \brief Evict until `bytes` more under `entry`'s key (not stored yet if `new_key`) fit,
  /// within the global budget and its tenant's (EntryTenant),
  /// counting the room other writers of this node reserved; then reserve that room until
  /// Release(). CapacityError "not admitted" if only evicting protected keys would make room.
  /// Keys in `keep` are never evicted for it (a view's source: cache/derived_cache.h).
  arrow::Status MakeRoom(const EntryMeta& entry, int64_t bytes, bool new_key,
                         const std::vector<std::string>& keep = {});
  /// \brief Give back what MakeRoom reserved (the entry was published or refused).
  void Release(int64_t bytes, bool new_key);
  /// \brief The limits a publish is checked against.
  BudgetLimits Limits(bool allow_one_over) const;
  /// \brief The limits of `tenant` (EntryTenant of an entry), if it has a budget.
  std::optional<BudgetLimits> TenantLimits(const std::string& tenant, bool allow_one_over) const;
  ScoringPolicy scoring() const;

  /// \brief Keys to evict, lowest score first, skipping protected ones: the single lowest
  /// (`below_bytes` empty), or as many as needed to hold at most `below_bytes`. Unless
  /// `dry_run`, they are evicted. Returns the keys.
  arrow::Result<std::vector<std::string>> Shrink(std::optional<int64_t> below_bytes,
                                                 bool dry_run);
  /// \brief Evict until the totals fit the limits (lowered at run time or since the last
  /// start). Protection does not apply. Returns the keys evicted.
  arrow::Result<std::vector<std::string>> FitToLimits();

  /// \brief Count a client's read of `key` (its score goes up).
  void CountRead(const std::string& key);

  arrow::Status Configure(const BudgetSettings& settings);
  BudgetSettings settings() const;
  void CountNotAdmitted() { ++not_admitted_; }
  int64_t evictions() const { return evictions_; }
  int64_t not_admitted() const { return not_admitted_; }
  /// \brief Continue the counts from a previous run's.
  void RestoreCounts(int64_t evictions, int64_t not_admitted) {
    evictions_ += evictions;
    not_admitted_ += not_admitted;
  }

 private:
  Evictor(BudgetSettings settings, EntryStore* entries, std::shared_ptr<Clock> clock)
      : settings_(std::move(settings)), entries_(entries), clock_(std::move(clock)) {}

  struct Need {
    int64_t bytes = 0;
    int64_t keys = 0;
    bool any() const { return bytes > 0 || keys > 0; }
  };
  /// Pick keys, lowest score first, that cover `need` (skipping those in `skip` and, if
  /// `protect`, young keys). `*covered` tells whether they do.
  arrow::Result<std::vector<std::string>> Pick(Need need, const std::vector<std::string>& skip,
                                               bool protect, bool* covered);
  /// Evict keys chosen by Pick; counts them.
  arrow::Status Evict(const std::vector<std::string>& victims);
  /// Evict the derived entries of `key`, just evicted.
  arrow::Status EvictDerived(const std::string& key);
  /// What must go for `bytes` and `keys` more to fit, counting this node's reservations.
  /// If nothing must and `reserve_if_room`, that room is reserved (until Release()).
  arrow::Result<Need> NeedFor(int64_t bytes, int64_t keys, const BudgetSettings& limits,
                              bool reserve_if_room);
  /// Add to (or, negative, take from) the room reserved for this node's publishes.
  void Reserve(int64_t bytes, int64_t keys);
  /// The eviction part of MakeRoom. REQUIRES: evicting_ held.
  arrow::Status EvictFor(const std::string& key, int64_t bytes, bool new_key,
                         const BudgetSettings& limits, const std::vector<std::string>& keep);
  using NeedFn = std::function<arrow::Result<Need>()>;
  using PickFn = std::function<arrow::Result<std::vector<std::string>>(Need, bool* covered)>;
  /// Under the eviction lease, evict what `pick` chooses until `need_now` says `key` (of
  /// `bytes`) fits. When only protected entries are left, `key`'s older versions go first;
  /// then it is refused as not admitted: it "does not fit in `budget`". REQUIRES: evicting_.
  arrow::Status EvictUntilFits(const std::string& key, int64_t bytes, const std::string& budget,
                               const NeedFn& need_now, const PickFn& pick);
  /// The part of MakeRoom within `entry`'s tenant's budget (OK at once if it has none).
  arrow::Status MakeTenantRoom(const EntryMeta& entry, int64_t bytes, bool new_key,
                               const std::vector<std::string>& keep);
  /// As Pick, among the entries of `tenant` only (its namespace and its query results).
  arrow::Result<std::vector<std::string>> PickInTenant(const std::string& tenant, Need need,
                                                       const std::vector<std::string>& skip,
                                                       bool* covered);
  /// Run `work` holding the eviction lease (waiting for another node's eviction to end).
  /// REQUIRES: evicting_ held.
  arrow::Status UnderLease(const std::function<arrow::Status()>& work);

  mutable std::mutex mutex_;  // guards settings_
  BudgetSettings settings_;
  EntryStore* entries_;
  std::shared_ptr<Clock> clock_;
  std::mutex evicting_;  // one eviction at a time in this process (held across its I/O)
  std::mutex reserved_mutex_;  // guards the reservations (never held across I/O)
  int64_t reserved_bytes_ = 0;  // room made for this node's publishes in progress
  int64_t reserved_keys_ = 0;
  std::atomic<int64_t> evictions_{0}, not_admitted_{0};
};

}  // namespace quiver
