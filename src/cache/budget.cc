#include "cache/budget.h"

#include <set>

#include "common/config.h"

namespace quiver {

arrow::Result<std::unique_ptr<Budget>> Budget::Make(BudgetSettings settings,
                                                    std::shared_ptr<Clock> clock) {
  if (settings.cache_size <= 0) return arrow::Status::Invalid("cache_size must be > 0");
  if (settings.max_entries < 0) return arrow::Status::Invalid("max_entries must be >= 0");
  if (settings.protect_s < 0) return arrow::Status::Invalid("protect_s must be >= 0");
  ARROW_ASSIGN_OR_RAISE(auto policy, MakeEvictionPolicy(settings.policy, settings.half_life));
  return std::unique_ptr<Budget>(
      new Budget(std::move(settings), std::move(clock), std::move(policy)));
}

bool Budget::ProtectedLocked(const std::string& key, int64_t now) const {
  if (settings_.protect_s <= 0) return false;
  auto it = created_ms_.find(key);
  return it != created_ms_.end() &&
         now - it->second < static_cast<int64_t>(settings_.protect_s * 1000);
}

arrow::Result<std::vector<std::string>> Budget::Reserve(const std::string& key, int64_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (bytes > settings_.cache_size) {
    return arrow::Status::CapacityError("not admitted: '", key, "' is ", FormatByteSize(bytes),
                                        ", larger than cache_size (",
                                        FormatByteSize(settings_.cache_size), ")");
  }
  const int64_t now = clock_->NowMillis();
  bool fits = false;
  auto victims = queue_.PickVictims(
      bytes + reserved_, queue_.Contains(key) ? 0 : 1, settings_.cache_size,
      settings_.max_entries,
      [&](const std::string& k) { return k == key || ProtectedLocked(k, now); }, &fits);
  if (!fits) {
    return arrow::Status::CapacityError(
        "not admitted: '", key, "' (", FormatByteSize(bytes), ") does not fit in cache_size (",
        FormatByteSize(settings_.cache_size), ") without evicting protected entries");
  }
  for (const auto& v : victims) {
    queue_.Remove(v);
    created_ms_.erase(v);
    last_access_ms_.erase(v);
  }
  reserved_ += bytes;
  return victims;
}

void Budget::Unreserve(int64_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  reserved_ -= bytes;
}

void Budget::Record(const std::string& key, int64_t total_bytes, double cost_s,
                    int64_t created_ms, int64_t reserved) {
  std::lock_guard<std::mutex> lock(mutex_);
  reserved_ -= reserved;
  queue_.Insert(key, total_bytes, cost_s);
  created_ms_[key] = created_ms;
  last_access_ms_[key] = created_ms;
}

void Budget::Touch(const std::string& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (queue_.Touch(key)) last_access_ms_[key] = clock_->NowMillis();
}

void Budget::Forget(const std::string& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  queue_.Remove(key);
  created_ms_.erase(key);
  last_access_ms_.erase(key);
}

std::vector<std::string> Budget::PickShrink(std::optional<int64_t> below_bytes) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t now = clock_->NowMillis();
  auto is_protected = [&](const std::string& k) { return ProtectedLocked(k, now); };
  if (!below_bytes) {
    auto lowest = queue_.Lowest(is_protected);
    return lowest.empty() ? std::vector<std::string>{} : std::vector<std::string>{lowest};
  }
  bool fits = false;
  // Leaves at most below_bytes stored.
  return queue_.PickVictims(0, 0, *below_bytes, 0, is_protected, &fits);
}

std::vector<std::string> Budget::PickToFit() const {
  std::lock_guard<std::mutex> lock(mutex_);
  bool fits = false;
  return queue_.PickVictims(0, 0, settings_.cache_size, settings_.max_entries, nullptr, &fits);
}

std::optional<KeyUsage> Budget::Usage(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const PolicyEntry* e = queue_.Find(key);
  if (!e) return std::nullopt;
  KeyUsage u;
  u.bytes = e->bytes;
  u.cost_s = e->cost_s;
  u.accesses = e->accesses;
  auto it = last_access_ms_.find(key);
  u.last_access_ms = it == last_access_ms_.end() ? 0 : it->second;
  u.score = queue_.Score(key);
  return u;
}

UsageSnapshot Budget::ExportUsage() const {
  std::lock_guard<std::mutex> lock(mutex_);
  UsageSnapshot out;
  out.tick = queue_.tick();
  out.records.reserve(queue_.size());
  for (const auto& key : queue_.InOrder()) {
    UsageRecord r;
    r.key = key;
    r.history = *queue_.Find(key);
    auto it = last_access_ms_.find(key);
    if (it != last_access_ms_.end()) r.last_access_ms = it->second;
    out.records.push_back(std::move(r));
  }
  return out;
}

int64_t Budget::RestoreUsage(const UsageSnapshot& saved) {
  std::lock_guard<std::mutex> lock(mutex_);
  // Lowest score first, so that uncovered keys keep their relative order when re-touched.
  const auto known = queue_.InOrder();
  queue_.AdvanceTick(saved.tick);
  std::set<std::string> restored;
  for (const auto& r : saved.records) {
    if (!queue_.RestoreHistory(r.key, r.history)) continue;
    last_access_ms_[r.key] = r.last_access_ms;
    restored.insert(r.key);
  }
  for (const auto& key : known) {
    if (restored.count(key)) continue;
    queue_.RestoreHistory(key, PolicyEntry{});
    queue_.Touch(key);
  }
  return static_cast<int64_t>(restored.size());
}

uint64_t Budget::tick() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.tick();
}

arrow::Status Budget::Configure(const BudgetSettings& settings) {
  if (settings.cache_size <= 0) return arrow::Status::Invalid("cache_size must be > 0");
  if (settings.max_entries < 0) return arrow::Status::Invalid("max_entries must be >= 0");
  ARROW_ASSIGN_OR_RAISE(auto policy, MakeEvictionPolicy(settings.policy, settings.half_life));
  std::lock_guard<std::mutex> lock(mutex_);
  if (settings.policy != settings_.policy || settings.half_life != settings_.half_life) {
    queue_.SetPolicy(std::move(policy));
  }
  settings_ = settings;
  return arrow::Status::OK();
}

BudgetSettings Budget::settings() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return settings_;
}

int64_t Budget::used_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.total_bytes();
}

int64_t Budget::reserved_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return reserved_;
}

int64_t Budget::entries() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(queue_.size());
}

}  // namespace quiver
