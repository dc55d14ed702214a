// One run of the eviction-policy trace simulator (bench/policy_sim.cc): the simulator's
// parameters, and for one seed the workload drawn and every trace x budget x policy
// replayed on it.
//
// Thread-safety: RunSeed runs its simulations on `p.threads` threads of its own and
// returns when they are done; a SeedRun is a plain value.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "policy_sim_replay.h"
#include "policy_sim_workload.h"

namespace quiver::policy_sim {

/// The simulator's parameters (its command-line flags).
struct Params {
  uint64_t seed = 1;
  int runs = 5;
  WorkloadParams workload;
  std::vector<double> budgets_pct = {1, 5, 20};
  std::vector<double> half_lives = {kServerHalfLife, 100000};
  int threads = 1;
  bool quick = false;
  bool markdown = false;
  bool no_oracle = false;
  bool verbose = false;
  std::string json_path;
};

/// One seed's workload, its traces, and the result of every simulation on them.
struct SeedRun {
  uint64_t seed = 0;
  Workload w;
  std::vector<Trace> traces;
  std::vector<Result> results;
  double wall_s = 0;
};

/// \brief Draw the workload of one seed and replay every trace, budget and policy.
///
/// Deterministic for given parameters and seed; the thread count changes only the timings.
/// Throws std::runtime_error if the workload cannot be drawn.
std::unique_ptr<SeedRun> RunSeed(const Params& p, uint64_t seed);

}  // namespace quiver::policy_sim
