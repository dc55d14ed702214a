// Replay of a trace against the real policy code (quiver::EvictionQueue with LruPolicy or
// CostAwarePolicy, exactly as the engine in src/cache/budget.cc drives it) for one budget,
// and what it measures: hits, bytes hit, recompute seconds saved, and why (entries cached,
// how long victims had been idle, the budget held by scan objects).
//
// Replay of one request for key k, as the server does it:
//   hit  (k is in the queue): EvictionQueue::Touch(k); its recompute cost counts as saved.
//   miss: the cost is spent; then k is admitted unless it is larger than the budget:
//         PickVictims (room for `bytes` and one entry, no entry limit, k protected),
//         Remove each victim, Insert(k).
//
// Thread-safety: Replay and StaticOracle only read their arguments; run them in parallel.
#pragma once

#include <cstdint>
#include <string>

#include "policy_sim_workload.h"

namespace quiver::policy_sim {

constexpr double kServerHalfLife = 1000;  // BudgetSettings::half_life's default

/// One simulation: a trace, a budget and a policy.
struct Config {
  std::string trace;
  double budget_pct = 0;
  int64_t budget_bytes = 0;
  std::string policy;  // "lru", "cost" or "oracle"
  double half_life = 0;
  std::string Label() const;
};

struct Result {
  Config config;
  int64_t requests = 0, hits = 0, bytes_requested = 0, bytes_hit = 0;
  int64_t not_admitted = 0, evictions = 0, final_entries = 0, final_bytes = 0;
  double cost_total = 0, cost_saved = 0;
  double wall_s = 0;
  // Diagnostics, averaged over all requests (sampled after each one):
  double avg_entries = 0;       // entries in the cache
  double avg_scan_share = 0;    // share of the budget held by scan (cold) objects
  int64_t idle_at_eviction_p50 = -1;  // accesses since a victim's last access
  int64_t idle_at_eviction_p90 = -1;
  double hit_ratio() const { return requests ? static_cast<double>(hits) / requests : 0; }
  double byte_hit_ratio() const {
    return bytes_requested ? static_cast<double>(bytes_hit) / bytes_requested : 0;
  }
};

/// \brief Replay `t` against an EvictionQueue with the policy of `c` ("lru" or "cost").
Result Replay(const Workload& w, const Trace& t, const Config& c);

/// \brief Reference, not a policy and not an upper bound: a fixed set chosen knowing the
/// whole trace, greedily by requests * cost / bytes until the budget is full (objects that
/// do not fit are skipped). Each object's first request is a miss (it is computed, then
/// kept).
Result StaticOracle(const Workload& w, const Trace& t, const Config& c);

}  // namespace quiver::policy_sim
