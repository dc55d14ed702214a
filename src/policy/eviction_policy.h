// Eviction policies: how an entry's accesses turn into a score. Lower scores leave first.
//
// Pure code: no I/O, no locks, no clock -- time is the cache's global access counter
// ("tick"), which the caller advances by one per access.
//
//   LruPolicy        score = tick of the last access.
//   CostAwarePolicy  the score of dask's cachey: each access at tick t adds m^t to the
//                    entry's weight, with m = 1 + ln 2 / half_life; score = weight *
//                    cost_seconds / bytes. So an entry's weight halves, relative to a new
//                    access, every half_life accesses, and expensive-to-recompute, small,
//                    often-used entries stay. m^t overflows a double after about 1024 *
//                    half_life accesses, so the weight is kept as its natural log and
//                    combined with log-add-exp; the score is returned as a log too (the
//                    order is the same).
//
// Thread-safety: policies are immutable after construction; PolicyEntry is a plain value.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include <arrow/result.h>

namespace quiver {

/// What a policy knows about one entry.
struct PolicyEntry {
  int64_t bytes = 0;
  double cost_s = 0;  ///< seconds it took to compute or receive
  double log_weight = -std::numeric_limits<double>::infinity();  ///< cost-aware
  uint64_t last_tick = 0;                                         ///< LRU
  uint64_t accesses = 0;
};

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual const char* name() const = 0;
  /// \brief Record an access (an insert is the first access) at global tick `tick`.
  virtual void Touch(PolicyEntry* entry, uint64_t tick) const = 0;
  /// \brief The entry's score; lower is evicted first. Scores of different entries are
  /// comparable at any time (they change only when the entry itself is touched).
  virtual double Score(const PolicyEntry& entry) const = 0;
};

class LruPolicy final : public EvictionPolicy {
 public:
  const char* name() const override { return "lru"; }
  void Touch(PolicyEntry* entry, uint64_t tick) const override;
  double Score(const PolicyEntry& entry) const override;
};

class CostAwarePolicy final : public EvictionPolicy {
 public:
  /// \brief REQUIRES: half_life > 0. Default used by the server: 1000.
  explicit CostAwarePolicy(double half_life);
  const char* name() const override { return "cost"; }
  double half_life() const { return half_life_; }
  void Touch(PolicyEntry* entry, uint64_t tick) const override;
  double Score(const PolicyEntry& entry) const override;

 private:
  double half_life_;
  double log_m_;  // ln(1 + ln 2 / half_life)
};

/// \brief Make a policy by name: "cost" (the default) or "lru".
arrow::Result<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(const std::string& name,
                                                                  double half_life);

/// \brief ln(e^a + e^b) without overflow.
double LogAddExp(double a, double b);

}  // namespace quiver
