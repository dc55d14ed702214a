// ObjectCache's management operations: invalidation with generations, shrinking, run-time
// settings and the entries listing. (The read/write path is in object_cache.cc.)
#include <algorithm>
#include <deque>
#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cache/object_cache.h"
#include "cache/usage_snapshot.h"
#include "common/config.h"

namespace quiver {

namespace {
constexpr const char* kRuntimeSettingsBlob = "settings/runtime.json";
}  // namespace

uint64_t ObjectCache::GenerationLocked(const std::string& name) const {
  auto it = generations_.find(name);
  return it == generations_.end() ? 0 : it->second;
}

void ObjectCache::BumpLocked(const std::string& name) { ++generations_[name]; }

GenerationSnapshot ObjectCache::Snapshot(const std::vector<std::string>& keys,
                                         const std::vector<std::string>& tags) {
  std::lock_guard<std::mutex> lock(generations_mutex_);
  GenerationSnapshot snapshot;
  for (const auto& k : keys) snapshot.emplace_back("k:" + k, GenerationLocked("k:" + k));
  for (const auto& t : tags) snapshot.emplace_back("t:" + t, GenerationLocked("t:" + t));
  return snapshot;
}

std::optional<std::string> ObjectCache::ChangedSince(const GenerationSnapshot& snapshot) {
  std::lock_guard<std::mutex> lock(generations_mutex_);
  return ChangedSinceLocked(snapshot);
}

std::optional<std::string> ObjectCache::ChangedSinceLocked(
    const GenerationSnapshot& snapshot) const {
  for (const auto& [name, generation] : snapshot) {
    if (GenerationLocked(name) != generation) return name.substr(2);
  }
  return std::nullopt;
}

arrow::Result<std::vector<std::string>> ObjectCache::InvalidateClosure(
    std::vector<std::string> seeds, bool cascade, const std::string& tag) {
  // Exclusive: no put or fill can check its generations and publish while the closure is
  // bumped and removed, so whichever comes first, nothing stale remains.
  std::unique_lock<std::shared_mutex> invalidation(invalidation_mutex_);
  if (!tag.empty()) {
    // Looked up under the lock: an entry with the tag that was being published is in.
    ARROW_ASSIGN_OR_RAISE(auto tagged, options_.index->KeysWithTag(tag));
    seeds.insert(seeds.end(), tagged.begin(), tagged.end());
  }
  std::set<std::string> closure;
  std::deque<std::string> pending(seeds.begin(), seeds.end());
  while (!pending.empty()) {
    std::string key = std::move(pending.front());
    pending.pop_front();
    if (!closure.insert(key).second) continue;
    if (!cascade) continue;
    ARROW_ASSIGN_OR_RAISE(auto dependents, options_.index->Dependents(key));
    for (auto& d : dependents) pending.push_back(std::move(d));
  }
  {
    std::lock_guard<std::mutex> gens(generations_mutex_);
    for (const auto& key : closure) BumpLocked("k:" + key);
    if (!tag.empty()) BumpLocked("t:" + tag);
  }
  std::vector<std::string> removed;
  for (const auto& key : closure) {
    ARROW_ASSIGN_OR_RAISE(int64_t n, RemoveKey(key));
    if (n > 0) removed.push_back(key);
  }
  invalidations_ += static_cast<int64_t>(removed.size());
  return removed;
}

arrow::Result<std::vector<std::string>> ObjectCache::Invalidate(const std::string& key,
                                                                bool cascade) {
  ARROW_ASSIGN_OR_RAISE(auto removed, InvalidateClosure({key}, cascade, ""));
  spdlog::info("invalidate {}{}: removed {} keys", key, cascade ? "" : " (no cascade)",
               removed.size());
  return removed;
}

arrow::Result<std::vector<std::string>> ObjectCache::InvalidateTag(const std::string& tag) {
  ARROW_ASSIGN_OR_RAISE(auto removed, InvalidateClosure({}, true, tag));
  spdlog::info("invalidate tag {}: removed {} keys", tag, removed.size());
  return removed;
}

arrow::Result<std::vector<std::string>> ObjectCache::Shrink(std::optional<int64_t> below_bytes,
                                                            bool dry_run) {
  if (below_bytes && *below_bytes < 0) {
    return arrow::Status::Invalid("shrink below ", *below_bytes, " bytes: must be >= 0");
  }
  auto keys = budget_->PickShrink(below_bytes);
  if (!dry_run) ARROW_RETURN_NOT_OK(EvictKeys(keys));
  return keys;
}

arrow::Status ObjectCache::ApplyRuntimeSettings(const RuntimeSettings& settings) {
  auto budget = budget_->settings();
  if (settings.half_life) budget.half_life = *settings.half_life;
  if (settings.cache_size) budget.cache_size = *settings.cache_size;
  ARROW_RETURN_NOT_OK(budget_->Configure(budget));
  if (settings.memory_size) {
    if (*settings.memory_size < 0) return arrow::Status::Invalid("memory_size must be >= 0");
    options_.memory_size = *settings.memory_size;
    memory_->SetCapacity(options_.memory_size, options_.memory_max_entry_bytes > 0
                                                   ? options_.memory_max_entry_bytes
                                                   : options_.memory_size / 8);
  }
  return arrow::Status::OK();
}

arrow::Status ObjectCache::LoadRuntimeSettings() {
  auto text = options_.store->ReadAll(kRuntimeSettingsBlob);
  if (!text.ok()) {
    if (text.status().IsKeyError()) return arrow::Status::OK();
    return text.status();
  }
  auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    spdlog::warn("ignoring unreadable {}", kRuntimeSettingsBlob);
    return arrow::Status::OK();
  }
  RuntimeSettings settings;
  if (j.contains("half_life")) settings.half_life = j["half_life"].get<double>();
  if (j.contains("cache_size")) settings.cache_size = j["cache_size"].get<int64_t>();
  if (j.contains("memory_size")) settings.memory_size = j["memory_size"].get<int64_t>();
  spdlog::info("using settings saved by config-set: {}", j.dump());
  return ApplyRuntimeSettings(settings);
}

arrow::Status ObjectCache::Configure(const RuntimeSettings& settings) {
  if (settings.half_life && !(*settings.half_life > 0)) {
    return arrow::Status::Invalid("half_life must be > 0, got ", *settings.half_life);
  }
  if (settings.cache_size && *settings.cache_size <= 0) {
    return arrow::Status::Invalid("cache_size must be > 0, got ", *settings.cache_size);
  }
  if (settings.memory_size && *settings.memory_size < 0) {
    return arrow::Status::Invalid("memory_size must be >= 0, got ", *settings.memory_size);
  }
  // One change at a time: each reads, merges and writes back both the budget's settings
  // and the saved file.
  std::lock_guard<std::mutex> lock(config_mutex_);
  ARROW_RETURN_NOT_OK(ApplyRuntimeSettings(settings));
  // Persist the merged settings so that they survive a restart.
  nlohmann::json saved = nlohmann::json::object();
  if (auto old = options_.store->ReadAll(kRuntimeSettingsBlob); old.ok()) {
    auto parsed = nlohmann::json::parse(*old, nullptr, false);
    if (!parsed.is_discarded() && parsed.is_object()) saved = parsed;
  }
  if (settings.half_life) saved["half_life"] = *settings.half_life;
  if (settings.cache_size) saved["cache_size"] = *settings.cache_size;
  if (settings.memory_size) saved["memory_size"] = *settings.memory_size;
  ARROW_RETURN_NOT_OK(options_.store->WriteAll(kRuntimeSettingsBlob, saved.dump()));
  auto over = budget_->PickToFit();
  if (!over.empty()) {
    ARROW_RETURN_NOT_OK(EvictKeys(over));
    spdlog::info("config-set: evicted {} entries to fit cache_size {}", over.size(),
                 FormatByteSize(budget_->settings().cache_size));
  }
  return arrow::Status::OK();
}

arrow::Result<std::vector<EntryInfo>> ObjectCache::Entries(const std::string& prefix) {
  ARROW_ASSIGN_OR_RAISE(auto latest, options_.index->ListLatest(prefix));
  std::vector<EntryInfo> out;
  out.reserve(latest.size());
  for (auto& meta : latest) {
    EntryInfo info;
    if (auto usage = budget_->Usage(meta.key)) info.usage = *usage;
    info.in_memory = memory_->Contains(meta.key, meta.blob);
    info.latest = std::move(meta);
    out.push_back(std::move(info));
  }
  return out;
}

void ObjectCache::LoadUsage() {
  auto file = options_.store->OpenReader(kUsageBlob);
  if (!file.ok()) {
    if (!file.status().IsKeyError()) {
      spdlog::warn("access histories not restored: {}", file.status().ToString());
    }
    usage_saved_tick_ = budget_->tick();
    return;
  }
  int64_t saved_ms = 0;
  auto snapshot = DecodeUsage(*file, &saved_ms);
  if (!snapshot.ok()) {
    spdlog::warn("access histories not restored ({}): {}", kUsageBlob,
                 snapshot.status().ToString());
    usage_saved_tick_ = budget_->tick();
    return;
  }
  const int64_t restored = budget_->RestoreUsage(*snapshot);
  usage_saved_tick_ = budget_->tick();
  spdlog::info("restored the access histories of {} of {} entries (saved {:.0f} s ago)",
               restored, budget_->entries(),
               std::max<int64_t>(0, options_.clock->NowMillis() - saved_ms) / 1000.0);
}

arrow::Status ObjectCache::SaveUsage() {
  std::lock_guard<std::mutex> lock(usage_mutex_);
  if (budget_->tick() == usage_saved_tick_) return arrow::Status::OK();  // nothing new
  auto snapshot = budget_->ExportUsage();
  // Streamed into the store; a failure aborts the blob, leaving the previous snapshot.
  ARROW_ASSIGN_OR_RAISE(auto blob, options_.store->OpenWriter(kUsageBlob));
  ARROW_RETURN_NOT_OK(WriteUsage(snapshot, options_.clock->NowMillis(), blob.get()));
  ARROW_ASSIGN_OR_RAISE(int64_t bytes, blob->Tell());
  ARROW_RETURN_NOT_OK(blob->Commit());
  usage_saved_tick_ = snapshot.tick;
  spdlog::debug("saved the access histories of {} entries ({})", snapshot.records.size(),
                FormatByteSize(bytes));
  return arrow::Status::OK();
}

void ObjectCache::UsageSaverLoop() {
  const auto interval = std::chrono::milliseconds(
      static_cast<int64_t>(options_.usage_save_interval_s * 1000));
  std::unique_lock<std::mutex> lock(usage_saver_mutex_);
  while (!usage_saver_stopping_) {
    usage_saver_cv_.wait_for(lock, interval, [&] { return usage_saver_stopping_; });
    if (usage_saver_stopping_) break;
    lock.unlock();
    auto st = SaveUsage();
    if (!st.ok()) spdlog::warn("saving access histories: {}", st.ToString());
    lock.lock();
  }
}

}  // namespace quiver
