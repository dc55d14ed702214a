#include "policy/eviction_queue.h"

namespace quiver {

void EvictionQueue::Reorder(const std::string& key, Item* item) {
  order_.erase({item->score, key});
  item->score = policy_->Score(item->entry);
  order_.insert({item->score, key});
}

void EvictionQueue::Insert(const std::string& key, int64_t bytes, double cost_s) {
  auto [it, inserted] = entries_.try_emplace(key);
  Item& item = it->second;
  if (inserted) {  // scored once, placed once
    item.entry.bytes = bytes;
    item.entry.cost_s = cost_s;
    total_bytes_ += bytes;
    policy_->Touch(&item.entry, ++tick_);
    item.score = policy_->Score(item.entry);
    order_.insert({item.score, key});
    return;
  }
  total_bytes_ -= item.entry.bytes;
  item.entry.bytes = bytes;
  item.entry.cost_s = cost_s;
  total_bytes_ += bytes;
  policy_->Touch(&item.entry, ++tick_);
  Reorder(key, &item);
}

bool EvictionQueue::Touch(const std::string& key, int64_t times) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  for (int64_t i = 0; i < times; ++i) policy_->Touch(&it->second.entry, ++tick_);
  Reorder(key, &it->second);
  return true;
}

void EvictionQueue::Resize(const std::string& key, int64_t bytes) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  total_bytes_ += bytes - it->second.entry.bytes;
  it->second.entry.bytes = bytes;
  Reorder(key, &it->second);
}

void EvictionQueue::Remove(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  order_.erase({it->second.score, key});
  total_bytes_ -= it->second.entry.bytes;
  entries_.erase(it);
}

bool EvictionQueue::InsertRestored(const std::string& key, int64_t bytes, double cost_s,
                                   const PolicyEntry& history) {
  auto [it, inserted] = entries_.try_emplace(key);
  if (!inserted) return false;
  Item& item = it->second;
  item.entry = history;
  item.entry.bytes = bytes;
  item.entry.cost_s = cost_s;
  total_bytes_ += bytes;
  item.score = policy_->Score(item.entry);
  order_.insert({item.score, key});
  return true;
}

bool EvictionQueue::RestoreHistory(const std::string& key, const PolicyEntry& history) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  PolicyEntry& entry = it->second.entry;
  entry.log_weight = history.log_weight;
  entry.last_tick = history.last_tick;
  entry.accesses = history.accesses;
  Reorder(key, &it->second);
  return true;
}

const PolicyEntry* EvictionQueue::Find(const std::string& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second.entry;
}

double EvictionQueue::Score(const std::string& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? 0 : it->second.score;
}

std::vector<std::string> EvictionQueue::PickVictims(
    int64_t incoming, int64_t incoming_entries, int64_t budget_bytes, int64_t max_entries,
    const std::function<bool(const std::string&)>& is_protected, bool* fits) const {
  std::vector<std::string> victims;
  int64_t bytes = total_bytes_ + incoming;
  int64_t count = static_cast<int64_t>(entries_.size()) + incoming_entries;
  auto over = [&] {
    return bytes > budget_bytes || (max_entries > 0 && count > max_entries);
  };
  for (auto it = order_.begin(); it != order_.end() && over(); ++it) {
    if (is_protected && is_protected(it->second)) continue;
    victims.push_back(it->second);
    bytes -= entries_.at(it->second).entry.bytes;
    --count;
  }
  *fits = !over();
  return victims;
}

std::string EvictionQueue::Lowest(
    const std::function<bool(const std::string&)>& is_protected) const {
  for (const auto& [score, key] : order_) {
    if (!is_protected || !is_protected(key)) return key;
  }
  return "";
}

std::vector<std::string> EvictionQueue::InOrder() const {
  std::vector<std::string> out;
  out.reserve(order_.size());
  for (const auto& [score, key] : order_) out.push_back(key);
  return out;
}

std::vector<std::pair<std::string, double>> EvictionQueue::Range(int64_t offset,
                                                                int64_t limit) const {
  std::vector<std::pair<std::string, double>> out;
  auto it = order_.begin();
  for (int64_t i = 0; i < offset && it != order_.end(); ++i) ++it;
  for (; it != order_.end() && static_cast<int64_t>(out.size()) < limit; ++it) {
    out.emplace_back(it->second, it->first);
  }
  return out;
}

void EvictionQueue::SetPolicy(std::shared_ptr<const EvictionPolicy> policy) {
  policy_ = std::move(policy);
  order_.clear();
  for (auto& [key, item] : entries_) {
    item.score = policy_->Score(item.entry);
    order_.insert({item.score, key});
  }
}

}  // namespace quiver
