// EmbeddedIndex: use and eviction scores, settings, leases, saved access histories.
#include <mutex>
#include <set>

#include "index/embedded_index.h"

namespace quiver {

void EmbeddedIndex::UsePolicyLocked(const ScoringPolicy& scoring) {
  if (scoring.name == scoring_.name && scoring.half_life == scoring_.half_life) return;
  auto policy = MakeEvictionPolicy(scoring.name, scoring.half_life);
  if (!policy.ok()) return;  // the engine validated it; keep scoring as before
  queue_.SetPolicy(std::move(*policy));
  scoring_ = scoring;
}

KeyUsage EmbeddedIndex::UsageOf(const Queue::Item& item) {
  KeyUsage usage;
  usage.bytes = item.entry.bytes;
  usage.cost_s = item.entry.cost_s;
  usage.accesses = item.entry.accesses;
  usage.created_ms = item.payload.versions.latest().created_ms();
  usage.last_access_ms = item.payload.last_access_ms;
  usage.score = item.score;
  return usage;
}

arrow::Status EmbeddedIndex::Touch(const std::vector<std::pair<std::string, int64_t>>& counts,
                                   int64_t now_ms, const ScoringPolicy& scoring) {
  std::unique_lock lock(mutex_);
  UsePolicyLocked(scoring);
  for (const auto& [key, n] : counts) {
    Queue::Item* item = queue_.FindItem(key);
    if (item == nullptr) continue;
    queue_.Touch(key, n);
    item->payload.last_access_ms = now_ms;
  }
  return arrow::Status::OK();
}

arrow::Result<std::optional<KeyUsage>> EmbeddedIndex::Usage(const std::string& key) {
  std::shared_lock lock(mutex_);
  const Queue::Item* item = queue_.FindItem(key);
  if (item == nullptr) return std::nullopt;
  return UsageOf(*item);
}

arrow::Result<std::vector<std::pair<std::string, KeyUsage>>> EmbeddedIndex::LowestScored(
    int64_t offset, int64_t limit) {
  std::shared_lock lock(mutex_);
  std::vector<std::pair<std::string, KeyUsage>> out;
  for (const auto* node : queue_.Range(offset, limit)) {
    out.emplace_back(node->first, UsageOf(node->second));
  }
  return out;
}

arrow::Result<std::map<std::string, std::string>> EmbeddedIndex::GetSettings() {
  std::shared_lock lock(mutex_);
  return settings_;
}

arrow::Status EmbeddedIndex::SetSettings(const std::map<std::string, std::string>& settings) {
  std::unique_lock lock(mutex_);
  for (const auto& [name, value] : settings) settings_[name] = value;
  return arrow::Status::OK();
}

arrow::Result<LeaseGrant> EmbeddedIndex::AcquireLease(const std::string& name,
                                                      const std::string& owner,
                                                      const std::string& endpoint,
                                                      int64_t ttl_ms) {
  std::unique_lock lock(mutex_);
  return leases_.Acquire(name, owner, endpoint, ttl_ms);
}

arrow::Result<bool> EmbeddedIndex::RenewLease(const LeaseRef& lease, int64_t ttl_ms) {
  std::unique_lock lock(mutex_);
  return leases_.Renew(lease, ttl_ms);
}

arrow::Status EmbeddedIndex::ReleaseLease(const LeaseRef& lease) {
  std::unique_lock lock(mutex_);
  leases_.Release(lease);
  return arrow::Status::OK();
}

arrow::Result<std::optional<LeaseHolder>> EmbeddedIndex::GetLease(const std::string& name) {
  std::unique_lock lock(mutex_);
  return leases_.Get(name);
}

UsageSnapshot EmbeddedIndex::ExportUsage() const {
  std::shared_lock lock(mutex_);
  UsageSnapshot out;
  out.tick = queue_.tick();
  out.records.reserve(queue_.size());
  // In key order: a restart loads them beside the journal's entries, which are too.
  for (const auto& [key, item] : queue_) {
    UsageRecord r;
    r.key = key;
    r.history = item.entry;
    r.last_access_ms = item.payload.last_access_ms;
    out.records.push_back(std::move(r));
  }
  return out;
}

int64_t EmbeddedIndex::RestoreUsage(const UsageSnapshot& saved) {
  std::unique_lock lock(mutex_);
  // Lowest score first, so that uncovered keys keep their relative order when re-touched.
  const auto known = queue_.InOrder();
  queue_.AdvanceTick(saved.tick);
  std::set<std::string> restored;
  for (const auto& r : saved.records) {
    Queue::Item* item = queue_.FindItem(r.key);
    if (item == nullptr || !queue_.RestoreHistory(r.key, r.history)) continue;
    item->payload.last_access_ms = r.last_access_ms;
    restored.insert(r.key);
  }
  for (const auto& key : known) {
    if (restored.count(key)) continue;
    queue_.RestoreHistory(key, PolicyEntry{});
    queue_.Touch(key);
  }
  return static_cast<int64_t>(restored.size());
}

uint64_t EmbeddedIndex::usage_tick() const {
  std::shared_lock lock(mutex_);
  return queue_.tick();
}

}  // namespace quiver
