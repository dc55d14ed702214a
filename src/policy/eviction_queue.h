// EvictionQueue: the entries of a cache ordered by their policy's score, with the sizes
// that budgets are enforced on. Picks victims: lowest score first, skipping protected
// entries. Pure bookkeeping -- the caller removes the victims from storage.
//
// Used by the engine (under its budget lock) and by the trace simulator in bench/, so the
// benchmark measures the real policy code.
//
// Thread-safety: not thread-safe; the owner serializes access.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "policy/eviction_policy.h"

namespace quiver {

class EvictionQueue {
 public:
  explicit EvictionQueue(std::shared_ptr<const EvictionPolicy> policy)
      : policy_(std::move(policy)) {}

  /// \brief Add or replace an entry; counts as an access.
  void Insert(const std::string& key, int64_t bytes, double cost_s);
  /// \brief Record `times` accesses; false if the key is unknown.
  bool Touch(const std::string& key, int64_t times = 1);
  /// \brief Change a known entry's size (versions trimmed), without counting an access.
  void Resize(const std::string& key, int64_t bytes);
  /// \brief Forget an entry (evicted, invalidated, deleted). No-op if unknown.
  void Remove(const std::string& key);

  bool Contains(const std::string& key) const { return entries_.count(key) > 0; }
  const PolicyEntry* Find(const std::string& key) const;
  double Score(const std::string& key) const;
  int64_t total_bytes() const { return total_bytes_; }
  size_t size() const { return entries_.size(); }
  uint64_t tick() const { return tick_; }

  /// \brief The lowest-scored entries to remove so that `incoming` more bytes fit in
  /// `budget_bytes` and `incoming_entries` more entries fit in `max_entries` (0:
  /// unlimited), skipping keys for which `is_protected` is true. Nothing is removed here.
  /// If even removing every unprotected entry would not make room, `*fits` is false.
  std::vector<std::string> PickVictims(int64_t incoming, int64_t incoming_entries,
                                       int64_t budget_bytes, int64_t max_entries,
                                       const std::function<bool(const std::string&)>& is_protected,
                                       bool* fits) const;
  /// \brief The lowest-scored unprotected entry, or empty.
  std::string Lowest(const std::function<bool(const std::string&)>& is_protected) const;
  /// \brief Keys in eviction order (lowest score first).
  std::vector<std::string> InOrder() const;
  /// \brief Up to `limit` keys in eviction order, from the `offset`-th on, with their scores.
  std::vector<std::pair<std::string, double>> Range(int64_t offset, int64_t limit) const;

  /// \brief Replace a known key's access history (accesses, weight, last tick) with one
  /// saved earlier, e.g. before a restart; bytes and cost stay. False if the key is unknown.
  bool RestoreHistory(const std::string& key, const PolicyEntry& history);
  /// \brief Add a new entry with an access history saved earlier (no access counted);
  /// false if the key is known already. Call AdvanceTick with the saved counter first.
  bool InsertRestored(const std::string& key, int64_t bytes, double cost_s,
                      const PolicyEntry& history);
  /// \brief Continue the access counter from `tick` if it is ahead (a restored history's
  /// ticks must stay in the past).
  void AdvanceTick(uint64_t tick) { tick_ = std::max(tick_, tick); }
  /// \brief Switch policy (e.g. a new half_life), rescoring every entry. Access
  /// history kept in PolicyEntry carries over.
  void SetPolicy(std::shared_ptr<const EvictionPolicy> policy);
  const EvictionPolicy& policy() const { return *policy_; }

 private:
  struct Item {
    PolicyEntry entry;
    double score = 0;
  };
  void Reorder(const std::string& key, Item* item);

  std::shared_ptr<const EvictionPolicy> policy_;
  std::map<std::string, Item> entries_;
  std::set<std::pair<double, std::string>> order_;
  int64_t total_bytes_ = 0;
  uint64_t tick_ = 0;
};

}  // namespace quiver
