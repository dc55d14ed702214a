#include "policy/eviction_policy.h"

#include <algorithm>
#include <cmath>

namespace quiver {

namespace {
// Floors that keep logs finite: costs are measured in milliseconds, so anything quicker
// counts as one millisecond; an empty stream still has its schema bytes.
constexpr double kMinCostSeconds = 1e-3;
constexpr double kMinBytes = 1;
}  // namespace

double LogAddExp(double a, double b) {
  if (std::isinf(a) && a < 0) return b;
  if (std::isinf(b) && b < 0) return a;
  double hi = std::max(a, b), lo = std::min(a, b);
  return hi + std::log1p(std::exp(lo - hi));
}

void LruPolicy::Touch(PolicyEntry* entry, uint64_t tick) const {
  entry->last_tick = tick;
  ++entry->accesses;
}

double LruPolicy::Score(const PolicyEntry& entry) const {
  return static_cast<double>(entry.last_tick);
}

CostAwarePolicy::CostAwarePolicy(double half_life)
    : half_life_(half_life), log_m_(std::log1p(std::log(2.0) / half_life)) {}

void CostAwarePolicy::Touch(PolicyEntry* entry, uint64_t tick) const {
  // weight += m^tick, in log space.
  entry->log_weight = LogAddExp(entry->log_weight, static_cast<double>(tick) * log_m_);
  entry->last_tick = tick;
  ++entry->accesses;
}

double CostAwarePolicy::Score(const PolicyEntry& entry) const {
  // log(weight * cost / bytes)
  return entry.log_weight + std::log(std::max(entry.cost_s, kMinCostSeconds)) -
         std::log(std::max(static_cast<double>(entry.bytes), kMinBytes));
}

arrow::Result<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(const std::string& name,
                                                                  double half_life) {
  if (name == "lru") return std::make_unique<LruPolicy>();
  if (name == "cost") {
    if (!(half_life > 0)) return arrow::Status::Invalid("half_life must be > 0, got ", half_life);
    return std::make_unique<CostAwarePolicy>(half_life);
  }
  return arrow::Status::Invalid("unknown eviction policy '", name, "': use cost or lru");
}

}  // namespace quiver
