#include "cache/evictor.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cache/derived_cache.h"
#include "cache/lease_run.h"
#include "common/config.h"
#include "common/rejection.h"
#include "policy/eviction_policy.h"

namespace quiver {

namespace {

constexpr const char* kEvictLease = "evict";
constexpr int64_t kEvictLeaseTtlMs = 5000;
constexpr int64_t kPage = 64;

arrow::Status CheckSettings(const BudgetSettings& settings) {
  if (settings.cache_size <= 0) return arrow::Status::Invalid("cache_size must be > 0");
  if (settings.max_entries < 0) return arrow::Status::Invalid("max_entries must be >= 0");
  if (settings.protect_s < 0) return arrow::Status::Invalid("protect_s must be >= 0");
  return MakeEvictionPolicy(settings.policy, settings.half_life).status();
}

}  // namespace

arrow::Result<std::unique_ptr<Evictor>> Evictor::Make(BudgetSettings settings,
                                                      EntryStore* entries,
                                                      std::shared_ptr<Clock> clock) {
  ARROW_RETURN_NOT_OK(CheckSettings(settings));
  return std::unique_ptr<Evictor>(new Evictor(std::move(settings), entries, std::move(clock)));
}

BudgetSettings Evictor::settings() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return settings_;
}

arrow::Status Evictor::Configure(const BudgetSettings& settings) {
  ARROW_RETURN_NOT_OK(CheckSettings(settings));
  std::lock_guard<std::mutex> lock(mutex_);
  settings_ = settings;
  return arrow::Status::OK();
}

ScoringPolicy Evictor::scoring() const {
  auto s = settings();
  return ScoringPolicy{s.policy, s.half_life};
}

BudgetLimits Evictor::Limits(bool allow_one_over) const {
  auto s = settings();
  return BudgetLimits{s.cache_size, s.max_entries, allow_one_over};
}

std::optional<BudgetLimits> Evictor::TenantLimits(const std::string& tenant,
                                                  bool allow_one_over) const {
  if (tenant.empty()) return std::nullopt;
  const auto s = settings();
  const TenantBudget* budget = FindTenantBudget(s.tenants, tenant);
  if (budget == nullptr) return std::nullopt;
  return BudgetLimits{budget->cache_size > 0 ? budget->cache_size
                                             : std::numeric_limits<int64_t>::max(),
                      budget->max_entries, allow_one_over};
}

arrow::Status Evictor::Admit(const EntryMeta& entry) {
  const auto& key = entry.key;
  const int64_t bytes = entry.bytes;
  const auto s = settings();
  int64_t limit = s.cache_size;
  std::string whose = "cache_size";
  const auto tenant = EntryTenant(entry);
  if (auto limits = TenantLimits(tenant, false); limits && limits->cache_size < limit) {
    limit = limits->cache_size;
    whose = "tenant '" + tenant + "''s cache_size";
  }
  if (bytes <= limit) return arrow::Status::OK();
  ++not_admitted_;
  return Reject(arrow::Status::CapacityError("not admitted: '", key, "' is ",
                                             FormatByteSize(bytes), ", larger than ", whose,
                                             " (", FormatByteSize(limit), ")"),
                RejectionKind::kTooLarge, "cache_size", limit);
}

arrow::Result<Evictor::Need> Evictor::NeedFor(int64_t bytes, int64_t keys,
                                              const BudgetSettings& limits,
                                              bool reserve_if_room) {
  // The index's totals are read outside the lock: a put that needs no eviction must not
  // wait behind another's round trip.
  ARROW_ASSIGN_OR_RAISE(auto stats, entries_->index()->Stats());
  std::lock_guard<std::mutex> lock(reserved_mutex_);
  Need need;
  need.bytes = stats.bytes + reserved_bytes_ + bytes - limits.cache_size;
  if (limits.max_entries > 0) {
    need.keys = stats.keys + reserved_keys_ + keys - limits.max_entries;
  }
  if (reserve_if_room && !need.any()) {
    reserved_bytes_ += bytes;
    reserved_keys_ += keys;
  }
  return need;
}

void Evictor::Reserve(int64_t bytes, int64_t keys) {
  std::lock_guard<std::mutex> lock(reserved_mutex_);
  reserved_bytes_ += bytes;
  reserved_keys_ += keys;
}

arrow::Result<std::vector<std::string>> Evictor::Pick(Need need,
                                                      const std::vector<std::string>& skip,
                                                      bool protect, bool* covered) {
  const auto s = settings();
  const int64_t now = clock_->NowMillis();
  const auto protect_ms = static_cast<int64_t>(s.protect_s * 1000);
  std::vector<std::string> victims;
  for (int64_t offset = 0; need.any(); offset += kPage) {
    ARROW_ASSIGN_OR_RAISE(auto page, entries_->index()->LowestScored(offset, kPage));
    for (const auto& [key, usage] : page) {
      if (!need.any()) break;
      if (std::find(skip.begin(), skip.end(), key) != skip.end() ||
          (protect && now - usage.created_ms < protect_ms)) {
        continue;
      }
      victims.push_back(key);
      need.bytes -= usage.bytes;
      --need.keys;
    }
    if (static_cast<int64_t>(page.size()) < kPage) break;
  }
  *covered = !need.any();
  return victims;
}

arrow::Status Evictor::Evict(const std::vector<std::string>& victims) {
  for (const auto& key : victims) {
    ARROW_ASSIGN_OR_RAISE(auto removed, entries_->Remove(RemoveRequest(key)));
    if (removed.empty()) continue;  // removed meanwhile
    ++evictions_;
    spdlog::debug("evicted {}", key);
    ARROW_RETURN_NOT_OK(EvictDerived(key));
  }
  return arrow::Status::OK();
}

arrow::Status Evictor::EvictDerived(const std::string& key) {
  // A view of an entry is only ever found through it (cache/derived_cache.h): without its
  // source it would hold room nobody can reach.
  ARROW_ASSIGN_OR_RAISE(auto dependents, entries_->index()->Dependents(key));
  for (const auto& dependent : dependents) {
    if (!IsQueryKey(dependent)) continue;
    ARROW_ASSIGN_OR_RAISE(auto meta, entries_->index()->Get(dependent, std::nullopt));
    if (!meta || !IsDerivedEntry(*meta)) continue;
    ARROW_ASSIGN_OR_RAISE(auto removed, entries_->Remove(RemoveRequest(dependent)));
    if (removed.empty()) continue;
    ++evictions_;
    spdlog::debug("evicted {} with its source {}", dependent, key);
  }
  return arrow::Status::OK();
}

arrow::Status Evictor::UnderLease(const std::function<arrow::Status()>& work) {
  LeaseRunOptions lease;
  lease.name = kEvictLease;
  lease.node = entries_->node();
  lease.ttl_ms = kEvictLeaseTtlMs;
  lease.wait_ms = 2 * kEvictLeaseTtlMs;  // outlasts a holder that died
  ARROW_ASSIGN_OR_RAISE(auto run, RunUnderLease(entries_->index(), lease,
                                                [&](const LeaseRef&) { return work(); }));
  if (run.ran) return arrow::Status::OK();
  return arrow::Status::IOError("could not take the eviction lease (held by ", run.holder.owner,
                                ")");
}

void Evictor::Release(int64_t bytes, bool new_key) { Reserve(-bytes, new_key ? -1 : 0); }

arrow::Result<std::vector<std::string>> Evictor::PickInTenant(const std::string& tenant,
                                                              Need need,
                                                              const std::vector<std::string>& skip,
                                                              bool* covered) {
  // The tenant's entries, lowest score first: a listing of its namespace and of the query
  // results (those of its scope count against it too).
  ARROW_ASSIGN_OR_RAISE(auto listed, entries_->index()->ListLatest(tenant + "/"));
  ARROW_ASSIGN_OR_RAISE(auto results, entries_->index()->ListLatest(kQueryKeyPrefix));
  for (auto& item : results) {
    if (item.latest.tenant == tenant) listed.push_back(std::move(item));
  }
  std::sort(listed.begin(), listed.end(), [](const IndexedKey& a, const IndexedKey& b) {
    return a.usage.score < b.usage.score;
  });
  const int64_t now = clock_->NowMillis();
  const auto protect_ms = static_cast<int64_t>(settings().protect_s * 1000);
  std::vector<std::string> victims;
  for (const auto& item : listed) {
    if (!need.any()) break;
    const auto& key = item.latest.key;
    if (EntryTenant(item.latest) != tenant ||
        std::find(skip.begin(), skip.end(), key) != skip.end() ||
        now - item.usage.created_ms < protect_ms) {
      continue;
    }
    victims.push_back(key);
    need.bytes -= item.usage.bytes;
    --need.keys;
  }
  *covered = !need.any();
  return victims;
}

arrow::Status Evictor::MakeTenantRoom(const EntryMeta& entry, int64_t bytes, bool new_key,
                                      const std::vector<std::string>& keep) {
  const auto& key = entry.key;
  const auto tenant = EntryTenant(entry);
  const auto limits = TenantLimits(tenant, false);
  if (!limits) return arrow::Status::OK();
  auto need_now = [&]() -> arrow::Result<Need> {
    ARROW_ASSIGN_OR_RAISE(auto totals, entries_->index()->TenantStats(tenant));
    Need need{totals.bytes + bytes - limits->cache_size, 0};
    if (limits->max_entries > 0) need.keys = totals.keys + (new_key ? 1 : 0) - limits->max_entries;
    return need;
  };
  ARROW_ASSIGN_OR_RAISE(auto need, need_now());
  if (!need.any()) return arrow::Status::OK();
  std::vector<std::string> skip = keep;
  skip.push_back(key);
  std::lock_guard<std::mutex> one_at_a_time(evicting_);
  return EvictUntilFits(
      key, bytes,
      fmt::format("tenant '{}''s budget (cache_size {}, max_entries {})", tenant,
                  FormatByteSize(limits->cache_size), limits->max_entries),
      need_now, [&](Need need, bool* covered) {
        return PickInTenant(tenant, need, skip, covered);
      });
}

arrow::Status Evictor::MakeRoom(const EntryMeta& entry, int64_t bytes, bool new_key,
                                const std::vector<std::string>& keep) {
  const auto& key = entry.key;
  const auto limits = settings();
  const int64_t keys = new_key ? 1 : 0;
  ARROW_RETURN_NOT_OK(MakeTenantRoom(entry, bytes, new_key, keep));
  ARROW_ASSIGN_OR_RAISE(auto need, NeedFor(bytes, keys, limits, /*reserve_if_room=*/true));
  if (!need.any()) return arrow::Status::OK();
  std::lock_guard<std::mutex> one_at_a_time(evicting_);
  return EvictFor(key, bytes, new_key, limits, keep);
}

arrow::Status Evictor::EvictFor(const std::string& key, int64_t bytes, bool new_key,
                                const BudgetSettings& limits,
                                const std::vector<std::string>& keep) {
  std::vector<std::string> skip = keep;
  skip.push_back(key);
  return EvictUntilFits(
      key, bytes,
      fmt::format("cache_size ({}) and max_entries ({})", FormatByteSize(limits.cache_size),
                  limits.max_entries),
      [&] { return NeedFor(bytes, new_key ? 1 : 0, limits, /*reserve_if_room=*/true); },
      [&](Need need, bool* covered) { return Pick(need, skip, /*protect=*/true, covered); });
}

arrow::Status Evictor::EvictUntilFits(const std::string& key, int64_t bytes,
                                      const std::string& budget, const NeedFn& need_now,
                                      const PickFn& pick) {
  return UnderLease([&]() -> arrow::Status {
    while (true) {
      ARROW_ASSIGN_OR_RAISE(auto need, need_now());
      if (!need.any()) return arrow::Status::OK();
      bool covered = false;
      ARROW_ASSIGN_OR_RAISE(auto victims, pick(need, &covered));
      if (!covered) {
        // When the budget is tight, this key's older versions go before the new one is
        // refused (its latest stays until the new one replaces it).
        ARROW_ASSIGN_OR_RAISE(auto trimmed, entries_->Trim(key, 1));
        if (!trimmed.empty()) continue;
        ++not_admitted_;
        return Reject(arrow::Status::CapacityError("not admitted: '", key, "' (",
                                                   FormatByteSize(bytes), ") does not fit in ",
                                                   budget, " without evicting protected entries"),
                      RejectionKind::kNotAdmitted);
      }
      ARROW_RETURN_NOT_OK(Evict(victims));
    }
  });
}

arrow::Result<std::vector<std::string>> Evictor::Shrink(std::optional<int64_t> below_bytes,
                                                        bool dry_run) {
  if (below_bytes && *below_bytes < 0) {
    return arrow::Status::Invalid("shrink below ", *below_bytes, " bytes: must be >= 0");
  }
  std::vector<std::string> victims;
  bool covered = false;
  if (below_bytes) {
    ARROW_ASSIGN_OR_RAISE(auto stats, entries_->index()->Stats());
    ARROW_ASSIGN_OR_RAISE(victims, Pick(Need{stats.bytes - *below_bytes, 0}, {},
                                        /*protect=*/true, &covered));
  } else {
    ARROW_ASSIGN_OR_RAISE(victims, Pick(Need{0, 1}, {}, /*protect=*/true, &covered));
  }
  if (!dry_run && !victims.empty()) {
    std::lock_guard<std::mutex> local(evicting_);
    ARROW_RETURN_NOT_OK(UnderLease([&] { return Evict(victims); }));
  }
  return victims;
}

arrow::Result<std::vector<std::string>> Evictor::FitToLimits() {
  std::lock_guard<std::mutex> local(evicting_);
  ARROW_ASSIGN_OR_RAISE(auto need, NeedFor(0, 0, settings(), /*reserve_if_room=*/false));
  if (!need.any()) return std::vector<std::string>{};
  bool covered = false;
  ARROW_ASSIGN_OR_RAISE(auto victims, Pick(need, {}, /*protect=*/false, &covered));
  ARROW_RETURN_NOT_OK(UnderLease([&] { return Evict(victims); }));
  return victims;
}

void Evictor::CountRead(const std::string& key) {
  auto st = entries_->index()->Touch({{key, 1}}, clock_->NowMillis(), scoring());
  if (!st.ok()) spdlog::debug("counting a read of {}: {}", key, st.ToString());
}

}  // namespace quiver
