#include "cache/local_state.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cache/usage_snapshot.h"
#include "common/config.h"

namespace quiver {

arrow::Result<RuntimeSettings> LocalState::LoadSettings() {
  auto text = store_->ReadAll(kRuntimeSettingsBlob);
  if (!text.ok()) {
    if (text.status().IsKeyError()) return RuntimeSettings{};
    return text.status();
  }
  auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    spdlog::warn("ignoring unreadable {}", kRuntimeSettingsBlob);
    return RuntimeSettings{};
  }
  std::map<std::string, std::string> map;
  for (auto& [name, value] : j.items()) map[name] = value.dump();
  auto settings = RuntimeSettings::FromMap(map);
  if (!settings.ok()) {
    spdlog::warn("ignoring {}: {}", kRuntimeSettingsBlob, settings.status().message());
    return RuntimeSettings{};
  }
  if (!settings->empty()) spdlog::info("using settings saved by config-set: {}", j.dump());
  return settings;
}

arrow::Status LocalState::SaveSettings() {
  std::lock_guard<std::mutex> lock(settings_mutex_);
  ARROW_ASSIGN_OR_RAISE(auto stored, index_->GetSettings());
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, value] : stored) {  // each value is JSON text (RuntimeSettings)
    auto parsed = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_discarded()) j[name] = std::move(parsed);
  }
  return store_->WriteAll(kRuntimeSettingsBlob, j.dump());
}

std::optional<UsageSnapshot> LocalState::ReadUsage() {
  auto file = store_->OpenReader(kUsageBlob);
  auto snapshot = file.ok() ? DecodeUsage(*file, &usage_saved_ms_)
                            : arrow::Result<UsageSnapshot>(file.status());
  if (!snapshot.ok()) {
    if (!snapshot.status().IsKeyError()) {
      spdlog::warn("access histories not restored ({}): {}", kUsageBlob,
                   snapshot.status().ToString());
    }
    return std::nullopt;
  }
  return std::move(*snapshot);
}

void LocalState::UsageLoaded(const UsageSnapshot* snapshot, int64_t restored) {
  std::lock_guard<std::mutex> lock(usage_mutex_);
  usage_saved_tick_ = index_->usage_tick();
  if (!snapshot) return;
  if (restore_counters_) restore_counters_(snapshot->counters);
  counters_saved_ = snapshot->counters;
  spdlog::info("restored the access histories of {} of {} entries (saved {:.0f} s ago)",
               restored, index_->Stats()->keys,
               std::max<int64_t>(0, clock_->NowMillis() - usage_saved_ms_) / 1000.0);
}

void LocalState::LoadUsage() {
  auto snapshot = ReadUsage();
  const int64_t restored = snapshot ? index_->RestoreUsage(*snapshot) : 0;
  UsageLoaded(snapshot ? &*snapshot : nullptr, restored);
}

arrow::Status LocalState::SaveUsage() {
  std::lock_guard<std::mutex> lock(usage_mutex_);
  auto counters = read_counters_ ? read_counters_() : std::map<std::string, int64_t>{};
  if (index_->usage_tick() == usage_saved_tick_ && counters == counters_saved_) {
    return arrow::Status::OK();  // nothing new
  }
  auto snapshot = index_->ExportUsage();
  snapshot.counters = counters;
  // Streamed into the store; a failure aborts the blob, leaving the previous snapshot.
  ARROW_ASSIGN_OR_RAISE(auto blob, store_->OpenWriter(kUsageBlob));
  ARROW_RETURN_NOT_OK(WriteUsage(snapshot, clock_->NowMillis(), blob.get()));
  ARROW_ASSIGN_OR_RAISE(int64_t bytes, blob->Tell());
  ARROW_RETURN_NOT_OK(blob->Commit());
  usage_saved_tick_ = snapshot.tick;
  counters_saved_ = std::move(counters);
  spdlog::debug("saved the access histories of {} entries ({})", snapshot.records.size(),
                FormatByteSize(bytes));
  return arrow::Status::OK();
}

}  // namespace quiver
