#include "policy_sim_run.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "policy_sim_format.h"

namespace quiver::policy_sim {

std::unique_ptr<SeedRun> RunSeed(const Params& p, uint64_t seed) {
  auto run = std::make_unique<SeedRun>();
  run->seed = seed;
  Workload& w = run->w;
  const auto start = std::chrono::steady_clock::now();
  GenerateWorkload(p.workload, seed, &w, &run->traces);

  std::vector<Config> configs;
  for (const auto& t : run->traces) {
    for (double pct : p.budgets_pct) {
      Config c;
      c.trace = t.name;
      c.budget_pct = pct;
      c.budget_bytes = static_cast<int64_t>(std::llround(w.hot_bytes * pct / 100));
      c.policy = "lru";
      configs.push_back(c);
      for (double hl : p.half_lives) {
        c.policy = "cost";
        c.half_life = hl;
        configs.push_back(c);
      }
      if (!p.no_oracle) {
        c.policy = "oracle";
        c.half_life = 0;
        configs.push_back(c);
      }
    }
  }
  std::cerr << fmt::format("seed {}: {} hot objects ({}), {} requests per trace, {} simulations\n",
                           seed, Group(p.workload.objects),
                           Bytes(static_cast<double>(w.hot_bytes)), Group(p.workload.requests),
                           configs.size());
  run->results.resize(configs.size());
  std::atomic<size_t> next{0};
  std::mutex log_mutex;
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < configs.size();) {
      const Config& c = configs[i];
      const Trace& t = *std::find_if(run->traces.begin(), run->traces.end(),
                                     [&](const Trace& x) { return x.name == c.trace; });
      run->results[i] = c.policy == "oracle" ? StaticOracle(w, t, c) : Replay(w, t, c);
      if (p.verbose) {
        std::lock_guard<std::mutex> lock(log_mutex);
        std::cerr << fmt::format("  {:<12} {:>5g}% {:<26} {:6.2f} s\n", c.trace, c.budget_pct,
                                 c.Label(), run->results[i].wall_s);
      }
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < p.threads; ++i) pool.emplace_back(worker);
  for (auto& th : pool) th.join();
  run->wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return run;
}

}  // namespace quiver::policy_sim
