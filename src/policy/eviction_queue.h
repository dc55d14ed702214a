// EvictionQueue: the entries of a cache ordered by their policy's score, with the sizes
// that budgets are enforced on. Picks victims: lowest score first, skipping protected
// entries. Pure bookkeeping -- the caller removes the victims from storage.
//
// Used by the engine's tiers (under their locks), by the embedded index (which keeps each
// key's versions as the entry's payload, so that a key is stored once: see
// index/embedded_index.h) and by the trace simulator in bench/, so the benchmark measures
// the real policy code.
//
// Layout: one ordered map node per key (the key, its access history, its score and the
// payload) and one node in the score order holding a pointer to it -- a key's text is kept
// once.
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

/// The payload of a queue whose owner keeps nothing per entry.
struct NoPayload {};

template <typename Payload>
class BasicEvictionQueue {
 public:
  struct Item {
    PolicyEntry entry;
    double score = 0;
    [[no_unique_address]] Payload payload;
  };
  using Map = std::map<std::string, Item>;
  using Node = typename Map::value_type;

  explicit BasicEvictionQueue(std::shared_ptr<const EvictionPolicy> policy)
      : policy_(std::move(policy)) {}
  BasicEvictionQueue(const BasicEvictionQueue&) = delete;
  BasicEvictionQueue& operator=(const BasicEvictionQueue&) = delete;

  /// \brief Add or replace an entry; counts as an access. Returns its node.
  Node& Insert(const std::string& key, int64_t bytes, double cost_s);
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

  // --- the entries by key, with their payloads ------------------------------------------
  Item* FindItem(const std::string& key);
  const Item* FindItem(const std::string& key) const;
  typename Map::iterator lower_bound(const std::string& key) { return entries_.lower_bound(key); }
  typename Map::const_iterator lower_bound(const std::string& key) const {
    return entries_.lower_bound(key);
  }
  typename Map::iterator begin() { return entries_.begin(); }
  typename Map::iterator end() { return entries_.end(); }
  typename Map::const_iterator begin() const { return entries_.begin(); }
  typename Map::const_iterator end() const { return entries_.end(); }

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
  /// \brief Up to `limit` entries in eviction order, from the `offset`-th on.
  std::vector<const Node*> Range(int64_t offset, int64_t limit) const;

  /// \brief Replace a known key's access history (accesses, weight, last tick) with one
  /// saved earlier, e.g. before a restart; bytes and cost stay. False if the key is unknown.
  bool RestoreHistory(const std::string& key, const PolicyEntry& history);
  /// \brief Bulk loading: add a new entry with an access history saved earlier (no access
  /// counted; call AdvanceTick with the saved counter first), at the end of the keys when
  /// they come in order, but leave it out of the score order until OrderAdded(). Nothing
  /// else may be called in between. Null if the key is known already.
  Node* Add(const std::string& key, int64_t bytes, double cost_s, const PolicyEntry& history);
  /// \brief Put every entry Add() added in the score order (one sort, not one tree
  /// insertion each).
  void OrderAdded() { Reorder(); }
  /// \brief Continue the access counter from `tick` if it is ahead (a restored history's
  /// ticks must stay in the past).
  void AdvanceTick(uint64_t tick) { tick_ = std::max(tick_, tick); }
  /// \brief Switch policy (e.g. a new half_life), rescoring every entry. Access
  /// history kept in PolicyEntry carries over.
  void SetPolicy(std::shared_ptr<const EvictionPolicy> policy);
  const EvictionPolicy& policy() const { return *policy_; }

 private:
  struct ByScore {
    bool operator()(const Node* a, const Node* b) const {
      if (a->second.score != b->second.score) return a->second.score < b->second.score;
      return a->first < b->first;
    }
  };
  /// Change `node`'s entry with `change`, keeping its place in the order right.
  template <typename F>
  void Update(Node* node, F&& change);
  /// Rebuild the score order from every entry.
  void Reorder();

  std::shared_ptr<const EvictionPolicy> policy_;
  Map entries_;
  std::set<const Node*, ByScore> order_;
  int64_t total_bytes_ = 0;
  uint64_t tick_ = 0;
};

using EvictionQueue = BasicEvictionQueue<NoPayload>;

// --- implementation ------------------------------------------------------------------------

template <typename P>
template <typename F>
void BasicEvictionQueue<P>::Update(Node* node, F&& change) {
  order_.erase(node);
  Item& item = node->second;
  total_bytes_ -= item.entry.bytes;
  change(&item.entry);
  total_bytes_ += item.entry.bytes;
  item.score = policy_->Score(item.entry);
  order_.insert(node);
}

template <typename P>
typename BasicEvictionQueue<P>::Node& BasicEvictionQueue<P>::Insert(const std::string& key,
                                                                    int64_t bytes,
                                                                    double cost_s) {
  auto [it, inserted] = entries_.try_emplace(key);
  Node* node = &*it;
  auto access = [&](PolicyEntry* e) {
    e->bytes = bytes;
    e->cost_s = cost_s;
    policy_->Touch(e, ++tick_);
  };
  if (!inserted) {
    Update(node, access);
    return *node;
  }
  access(&it->second.entry);  // scored once, placed once
  total_bytes_ += bytes;
  it->second.score = policy_->Score(it->second.entry);
  order_.insert(node);
  return *node;
}

template <typename P>
bool BasicEvictionQueue<P>::Touch(const std::string& key, int64_t times) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  Update(&*it, [&](PolicyEntry* e) {
    for (int64_t i = 0; i < times; ++i) policy_->Touch(e, ++tick_);
  });
  return true;
}

template <typename P>
void BasicEvictionQueue<P>::Resize(const std::string& key, int64_t bytes) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  Update(&*it, [&](PolicyEntry* e) { e->bytes = bytes; });
}

template <typename P>
void BasicEvictionQueue<P>::Remove(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  order_.erase(&*it);
  total_bytes_ -= it->second.entry.bytes;
  entries_.erase(it);
}

template <typename P>
typename BasicEvictionQueue<P>::Node* BasicEvictionQueue<P>::Add(const std::string& key,
                                                                 int64_t bytes, double cost_s,
                                                                 const PolicyEntry& history) {
  const size_t before = entries_.size();
  auto it = entries_.try_emplace(entries_.end(), key);  // O(1) when keys come in order
  if (entries_.size() == before) return nullptr;
  Item& item = it->second;
  item.entry = history;
  item.entry.bytes = bytes;
  item.entry.cost_s = cost_s;
  total_bytes_ += bytes;
  item.score = policy_->Score(item.entry);
  return &*it;
}

template <typename P>
bool BasicEvictionQueue<P>::RestoreHistory(const std::string& key, const PolicyEntry& history) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  Update(&*it, [&](PolicyEntry* e) {
    e->log_weight = history.log_weight;
    e->last_tick = history.last_tick;
    e->accesses = history.accesses;
  });
  return true;
}

template <typename P>
const PolicyEntry* BasicEvictionQueue<P>::Find(const std::string& key) const {
  const Item* item = FindItem(key);
  return item ? &item->entry : nullptr;
}

template <typename P>
typename BasicEvictionQueue<P>::Item* BasicEvictionQueue<P>::FindItem(const std::string& key) {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

template <typename P>
const typename BasicEvictionQueue<P>::Item* BasicEvictionQueue<P>::FindItem(
    const std::string& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

template <typename P>
double BasicEvictionQueue<P>::Score(const std::string& key) const {
  const Item* item = FindItem(key);
  return item ? item->score : 0;
}

template <typename P>
std::vector<std::string> BasicEvictionQueue<P>::PickVictims(
    int64_t incoming, int64_t incoming_entries, int64_t budget_bytes, int64_t max_entries,
    const std::function<bool(const std::string&)>& is_protected, bool* fits) const {
  std::vector<std::string> victims;
  int64_t bytes = total_bytes_ + incoming;
  int64_t count = static_cast<int64_t>(entries_.size()) + incoming_entries;
  auto over = [&] {
    return bytes > budget_bytes || (max_entries > 0 && count > max_entries);
  };
  for (auto it = order_.begin(); it != order_.end() && over(); ++it) {
    const Node* node = *it;
    if (is_protected && is_protected(node->first)) continue;
    victims.push_back(node->first);
    bytes -= node->second.entry.bytes;
    --count;
  }
  *fits = !over();
  return victims;
}

template <typename P>
std::string BasicEvictionQueue<P>::Lowest(
    const std::function<bool(const std::string&)>& is_protected) const {
  for (const Node* node : order_) {
    if (!is_protected || !is_protected(node->first)) return node->first;
  }
  return "";
}

template <typename P>
std::vector<std::string> BasicEvictionQueue<P>::InOrder() const {
  std::vector<std::string> out;
  out.reserve(order_.size());
  for (const Node* node : order_) out.push_back(node->first);
  return out;
}

template <typename P>
std::vector<const typename BasicEvictionQueue<P>::Node*> BasicEvictionQueue<P>::Range(
    int64_t offset, int64_t limit) const {
  std::vector<const Node*> out;
  auto it = order_.begin();
  for (int64_t i = 0; i < offset && it != order_.end(); ++i) ++it;
  for (; it != order_.end() && static_cast<int64_t>(out.size()) < limit; ++it) {
    out.push_back(*it);
  }
  return out;
}

template <typename P>
void BasicEvictionQueue<P>::Reorder() {
  // Sorted first (scores beside the pointers: few nodes are visited to compare), then
  // inserted at the end each time: linear, not n tree walks.
  std::vector<std::pair<double, const Node*>> nodes;
  nodes.reserve(entries_.size());
  for (const Node& node : entries_) nodes.emplace_back(node.second.score, &node);
  std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second->first < b.second->first;
  });
  order_.clear();
  for (const auto& [score, node] : nodes) order_.insert(order_.end(), node);
}

template <typename P>
void BasicEvictionQueue<P>::SetPolicy(std::shared_ptr<const EvictionPolicy> policy) {
  policy_ = std::move(policy);
  for (auto& [key, item] : entries_) item.score = policy_->Score(item.entry);
  Reorder();
}

extern template class BasicEvictionQueue<NoPayload>;

}  // namespace quiver
