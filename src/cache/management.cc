#include "cache/management.h"

#include <spdlog/spdlog.h>

#include "common/config.h"

namespace quiver {

arrow::Status Management::Apply(const RuntimeSettings& settings) {
  auto budget = evictor_->settings();
  if (settings.half_life) budget.half_life = *settings.half_life;
  if (settings.cache_size) budget.cache_size = *settings.cache_size;
  ARROW_RETURN_NOT_OK(evictor_->Configure(budget));
  if (settings.memory_size) entries_->memory()->SetCapacity(*settings.memory_size);
  return arrow::Status::OK();
}

arrow::Result<std::map<std::string, std::string>> Management::ReloadSettings() {
  ARROW_ASSIGN_OR_RAISE(auto stored, entries_->index()->GetSettings());
  ARROW_ASSIGN_OR_RAISE(auto settings, RuntimeSettings::FromMap(stored));
  ARROW_RETURN_NOT_OK(Apply(settings));
  return stored;
}

arrow::Status Management::Configure(const RuntimeSettings& settings) {
  ARROW_RETURN_NOT_OK(settings.Validate());
  // One change at a time: each writes the index's settings and the saved file.
  std::lock_guard<std::mutex> lock(config_mutex_);
  ARROW_RETURN_NOT_OK(entries_->index()->SetSettings(settings.ToMap()));
  if (local_state_) ARROW_RETURN_NOT_OK(local_state_->SaveSettings());
  ARROW_RETURN_NOT_OK(Apply(settings));
  IndexEvent changed;
  changed.kind = IndexEvent::Kind::kSettings;
  changed.node = entries_->node();
  auto told = entries_->index()->Announce(changed);
  if (!told.ok()) spdlog::warn("announcing new settings: {}", told.ToString());
  ARROW_ASSIGN_OR_RAISE(auto evicted, evictor_->FitToLimits());
  if (!evicted.empty()) {
    spdlog::info("config-set: evicted {} entries to fit cache_size {}", evicted.size(),
                 FormatByteSize(evictor_->settings().cache_size));
  }
  return arrow::Status::OK();
}

arrow::Result<std::vector<EntryInfo>> Management::Entries(const std::string& prefix) {
  ARROW_ASSIGN_OR_RAISE(auto listed, entries_->index()->ListLatest(prefix));
  std::vector<EntryInfo> out;
  out.reserve(listed.size());
  for (auto& item : listed) {
    EntryInfo info;
    info.in_memory = entries_->memory()->Contains(item.latest.key, item.latest.blob);
    info.usage = item.usage;
    info.latest = std::move(item.latest);
    out.push_back(std::move(info));
  }
  return out;
}

arrow::Result<CacheStats> Management::Stats() {
  Index* index = entries_->index();
  CacheStats stats;
  stats.node = entries_->node();
  stats.index_kind = index->Describe();
  stats.shared = index->shared();
  stats.health = index->Health();
  auto totals = index->Stats();
  if (totals.ok()) {
    stats.index = *totals;
  } else if (!IsIndexUnavailable(totals.status())) {
    return totals.status();
  }
  stats.objects = objects_->Stats();
  stats.evictions = evictor_->evictions();
  stats.invalidations = invalidator_->invalidations();
  stats.not_admitted = evictor_->not_admitted();
  stats.reads_without_index = entries_->reads_without_index();
  stats.budget = evictor_->settings();
  stats.memory = entries_->memory()->Stats();
  stats.damaged = entries_->damaged();
  if (auto* disk = entries_->disk()) {
    stats.has_disk_tier = true;
    stats.disk = disk->Stats();
  }
  return stats;
}

arrow::Result<Management::TenantUsage> Management::TenantStats(const std::string& tenant) {
  TenantUsage usage;
  ARROW_ASSIGN_OR_RAISE(usage.totals, entries_->index()->TenantStats(tenant));
  const auto budget = evictor_->settings();
  if (const TenantBudget* b = FindTenantBudget(budget.tenants, tenant)) usage.budget = *b;
  return usage;
}

}  // namespace quiver
