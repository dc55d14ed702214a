// Eviction-policy trace simulator: replays synthetic workloads with heterogeneous sizes and
// recompute costs against the real policy code (quiver::EvictionQueue with LruPolicy or
// CostAwarePolicy, exactly as the engine in src/cache/budget.cc drives it) and reports, per
// policy and cache budget, the hit ratio, the byte hit ratio and the recompute seconds saved.
//
//   policy_sim_workload.h  the objects and the traces (skewed, scan) drawn for one seed
//   policy_sim_replay.h    one trace replayed against the policy for one budget; the metrics
//   policy_sim_run.h       the parameters; one seed: every trace x budget x policy
//   policy_sim_report.h    the tables, the across-runs summary, the verdict and the JSON
//
// Several runs (seeds) are replayed; the first is printed in full, then medians and ranges
// across runs, then whether the goal (cost-aware saves >= 1.2x LRU on the skewed trace) holds.
//
// Usage: quiver_policy_sim [--quick] [--runs N] [--json FILE] [--markdown] [--help]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "policy_sim_format.h"
#include "policy_sim_report.h"
#include "policy_sim_run.h"

using quiver::policy_sim::Bytes;
using quiver::policy_sim::Group;
using quiver::policy_sim::Params;
using quiver::policy_sim::PrintAcrossRuns;
using quiver::policy_sim::PrintTable;
using quiver::policy_sim::PrintVerdict;
using quiver::policy_sim::RunSeed;
using quiver::policy_sim::SeedRun;
using quiver::policy_sim::ToJson;

int main(int argc, char** argv) {
  Params p;
  p.threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  CLI::App app{
      "Replays synthetic traces against Quiver's eviction policies (LRU and cost-aware, the\n"
      "real quiver_policy code) and reports hit ratio, byte hit ratio and recompute seconds\n"
      "saved per policy and budget. Deterministic for given seeds and parameters (the\n"
      "thread count changes only the timings).",
      "quiver_policy_sim"};
  app.add_option("--seed", p.seed, "Seed of the first run; run i uses seed + i")
      ->capture_default_str();
  app.add_option("--runs", p.runs,
                 "Independent runs (seeds); full tables for the first, medians across all")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--objects", p.workload.objects, "Number of hot objects (Zipf popularity)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  app.add_option("--requests", p.workload.requests, "Requests per trace")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000000}));
  app.add_option("--zipf", p.workload.zipf_s, "Zipf exponent s of the popularity")
      ->capture_default_str();
  app.add_option("--size-median-mib", p.workload.size_median_mib,
                 "Median object size (MiB), lognormal")
      ->capture_default_str();
  app.add_option("--size-sigma", p.workload.size_sigma,
                 "Sigma of ln(size); sizes clamped to [1 KiB, 1 GiB]")
      ->capture_default_str();
  app.add_option("--cost-median", p.workload.cost_median_s, "Median recompute cost (s), lognormal")
      ->capture_default_str();
  app.add_option("--cost-sigma", p.workload.cost_sigma, "Sigma of ln(cost)")->capture_default_str();
  app.add_option("--cost-size-corr", p.workload.cost_size_corr,
                 "Correlation of ln(cost) with ln(size); 0: independent, 1: cost grows with size")
      ->capture_default_str()
      ->check(CLI::Range(-1.0, 1.0));
  app.add_option("--scan-fraction", p.workload.scan_fraction,
                 "Share of the scan trace's requests that are scans")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 0.95));
  app.add_option("--scan-length", p.workload.scan_length, "Distinct cold objects read by one scan")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  app.add_option("--budgets", p.budgets_pct, "Budgets in % of the hot objects' total bytes")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--half-lives", p.half_lives,
                 "half_life values of the cost-aware policy (the server's default is 1000)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--traces", p.workload.traces, "Traces to run: skewed, scan")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::IsMember({"skewed", "scan"}));
  app.add_option("--threads", p.threads, "Simulations run in parallel [default: cores, max 4]")
      ->check(CLI::Range(1, 64));
  app.add_flag("--quick", p.quick,
               "Smoke run: 2,000 objects, 100,000 requests, scans of 500, 2 runs (explicit "
               "options still apply)");
  app.add_flag("--markdown", p.markdown, "Print the tables as Markdown");
  app.add_flag("--no-oracle", p.no_oracle, "Leave out the static-oracle reference rows");
  app.add_flag("-v,--verbose", p.verbose, "Log each simulation's time to stderr");
  app.add_option("--json", p.json_path, "Also write every figure and the parameters to this file");
  CLI11_PARSE(app, argc, argv);

  if (p.quick) {
    if (app.count("--objects") == 0) p.workload.objects = 2000;
    if (app.count("--requests") == 0) p.workload.requests = 100000;
    if (app.count("--scan-length") == 0) p.workload.scan_length = 500;
    if (app.count("--runs") == 0) p.runs = 2;
  }
  for (double hl : p.half_lives) {
    if (!(hl > 0)) {
      std::cerr << "--half-lives: every value must be > 0\n";
      return 2;
    }
  }
  for (double b : p.budgets_pct) {
    if (!(b > 0)) {
      std::cerr << "--budgets: every value must be > 0\n";
      return 2;
    }
  }
  std::vector<std::string>& traces = p.workload.traces;
  std::sort(traces.begin(), traces.end(), std::greater<>());  // skewed first
  traces.erase(std::unique(traces.begin(), traces.end()), traces.end());

  const auto run_start = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<SeedRun>> runs;
  try {
    for (int i = 0; i < p.runs; ++i) runs.push_back(RunSeed(p, p.seed + i));
  } catch (const std::exception& e) {
    std::cerr << "quiver_policy_sim: " << e.what() << "\n";
    return 2;
  }
  const double total_wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();

  const SeedRun& first = *runs.front();
  std::cout << fmt::format(
      "Eviction-policy simulation, run 1 of {} (seed {}): {} hot objects, {} in total (mean "
      "{}); budgets are % of that total. Recompute seconds saved = sum of the recompute costs "
      "of the hits.\n",
      runs.size(), first.seed, Group(p.workload.objects),
      Bytes(static_cast<double>(first.w.hot_bytes)),
      Bytes(static_cast<double>(first.w.hot_bytes) / p.workload.objects));
  for (const auto& t : first.traces) {
    if (t.name != "scan-control") PrintTable(p, t, first.results);
  }
  if (runs.size() > 1) PrintAcrossRuns(p, runs);
  PrintVerdict(p, runs);
  std::cout << fmt::format("\nWall time: {:.1f} s ({} thread(s))\n", total_wall_s, p.threads);

  if (!p.json_path.empty()) {
    std::ofstream out(p.json_path);
    out << ToJson(p, runs, total_wall_s).dump(2) << "\n";
    if (!out) {
      std::cerr << "cannot write " << p.json_path << "\n";
      return 1;
    }
    std::cerr << "wrote " << p.json_path << "\n";
  }
  return 0;
}
