// The eviction-policy trace simulator's report (bench/policy_sim.cc): per trace, the first
// run's table of hit ratio, byte hit ratio and recompute seconds saved per budget and policy,
// with diagnostics; medians and ranges across runs; whether the goal (cost-aware saves
// >= 1.2x LRU on the skewed trace) holds; and every figure as JSON.
//
// Thread-safety: the Print functions write to std::cout; call them from one thread.
#pragma once

#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy_sim_replay.h"
#include "policy_sim_run.h"
#include "policy_sim_workload.h"

namespace quiver::policy_sim {

/// \brief Print the table of trace `t` from one run's `results` (for "scan", with the
/// figures of "scan-control" beside it), then its diagnostics.
void PrintTable(const Params& p, const Trace& t, const std::vector<Result>& results);

/// \brief Print, per trace, the median [min–max] of each figure across `runs`.
void PrintAcrossRuns(const Params& p, const std::vector<std::unique_ptr<SeedRun>>& runs);

/// \brief Print, per half_life, at how many budgets the goal is met in every run.
void PrintVerdict(const Params& p, const std::vector<std::unique_ptr<SeedRun>>& runs);

/// \brief Every figure of every run, with the parameters.
nlohmann::json ToJson(const Params& p, const std::vector<std::unique_ptr<SeedRun>>& runs,
                      double total_wall_s);

}  // namespace quiver::policy_sim
