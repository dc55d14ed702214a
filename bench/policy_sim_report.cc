#include "policy_sim_report.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "policy_sim_format.h"

namespace quiver::policy_sim {

using nlohmann::json;

namespace {

const Result* Find(const std::vector<Result>& results, const std::string& trace, double pct,
                   const std::string& policy, double half_life = 0) {
  for (const auto& r : results) {
    if (r.config.trace == trace && r.config.budget_pct == pct && r.config.policy == policy &&
        (policy != "cost" || r.config.half_life == half_life)) {
      return &r;
    }
  }
  return nullptr;
}

void PrintRows(const std::vector<std::vector<std::string>>& rows, bool markdown) {
  if (markdown) {
    for (size_t i = 0; i < rows.size(); ++i) {
      std::cout << "|";
      for (const auto& cell : rows[i]) std::cout << " " << cell << " |";
      std::cout << "\n";
      if (i == 0) {
        std::cout << "|---|---|";
        for (size_t k = 2; k < rows[0].size(); ++k) std::cout << "---:|";
        std::cout << "\n";
      }
    }
    return;
  }
  std::vector<size_t> width(rows[0].size(), 0);
  auto display_len = [](const std::string& s) {
    size_t n = 0;
    for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;  // count UTF-8 code points
    return n;
  };
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], display_len(row[i]));
  }
  for (const auto& row : rows) {
    std::string line = "  ";
    for (size_t i = 0; i < row.size(); ++i) {
      std::string pad(width[i] - display_len(row[i]), ' ');
      line += i < 2 ? row[i] + pad : pad + row[i];  // text left, numbers right
      line += "  ";
    }
    line.erase(line.find_last_not_of(' ') + 1);
    std::cout << line << "\n";
  }
}

struct Stat {
  double median = 0, min = 0, max = 0;
};

Stat Summary(std::vector<double> v) {
  Stat s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  s.min = v.front();
  s.max = v.back();
  return s;
}

/// `fn` of the matching result of every run (runs without one are skipped).
std::vector<double> Across(const std::vector<std::unique_ptr<SeedRun>>& runs,
                           const std::string& trace, double pct, const std::string& policy,
                           double half_life,
                           const std::function<double(const Result&, const SeedRun&)>& fn) {
  std::vector<double> out;
  for (const auto& run : runs) {
    if (const Result* r = Find(run->results, trace, pct, policy, half_life)) {
      out.push_back(fn(*r, *run));
    }
  }
  return out;
}

double SavedVsLru(const Result& r, const SeedRun& run) {
  const Result* lru = Find(run.results, r.config.trace, r.config.budget_pct, "lru");
  return lru && lru->cost_saved > 0 ? r.cost_saved / lru->cost_saved : 0;
}

double LostToScans(const Result& r, const SeedRun& run) {
  const Result* c =
      Find(run.results, "scan-control", r.config.budget_pct, r.config.policy, r.config.half_life);
  return c && c->cost_saved > 0 ? 1 - r.cost_saved / c->cost_saved : 0;
}

double ShareOfSavable(const Result& r, const SeedRun& run) {
  for (const auto& t : run.traces) {
    if (t.name == r.config.trace) {
      const double savable = t.cost_total - t.cost_compulsory;
      return savable > 0 ? r.cost_saved / savable : 0;
    }
  }
  return 0;
}

json ResultJson(const Result& r, const SeedRun& run) {
  json e = {{"trace", r.config.trace},
            {"budget_pct", r.config.budget_pct},
            {"budget_bytes", r.config.budget_bytes},
            {"policy", r.config.policy},
            {"requests", r.requests},
            {"hits", r.hits},
            {"hit_ratio", r.hit_ratio()},
            {"bytes_requested", r.bytes_requested},
            {"bytes_hit", r.bytes_hit},
            {"byte_hit_ratio", r.byte_hit_ratio()},
            {"cost_total_s", r.cost_total},
            {"cost_saved_s", r.cost_saved},
            {"share_of_savable", ShareOfSavable(r, run)},
            {"saved_vs_lru", SavedVsLru(r, run)},
            {"not_admitted", r.not_admitted},
            {"evictions", r.evictions},
            {"final_entries", r.final_entries},
            {"final_bytes", r.final_bytes},
            {"avg_entries", r.avg_entries},
            {"avg_scan_share", r.avg_scan_share},
            {"idle_at_eviction_p50", r.idle_at_eviction_p50},
            {"idle_at_eviction_p90", r.idle_at_eviction_p90},
            {"wall_s", r.wall_s}};
  if (r.config.policy == "cost") e["half_life"] = r.config.half_life;
  if (r.config.trace == "scan") e["lost_to_scans"] = LostToScans(r, run);
  return e;
}

}  // namespace

void PrintTable(const Params& p, const Trace& t, const std::vector<Result>& results) {
  const double savable = t.cost_total - t.cost_compulsory;
  const bool with_control = t.name == "scan";
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"budget", "policy", "hit ratio", "byte hit ratio", "recompute s saved",
                  "% of savable", "saved vs LRU", "µs/request"});
  if (with_control) {
    rows[0].insert(rows[0].end() - 1, {"saved w/o scans", "lost to scans"});
  }
  for (double pct : p.budgets_pct) {
    const Result* lru = Find(results, t.name, pct, "lru");
    bool first = true;
    for (const auto& r : results) {
      if (r.config.trace != t.name || r.config.budget_pct != pct) continue;
      std::string budget =
          first ? fmt::format("{:g}% ({})", pct, Bytes(static_cast<double>(r.config.budget_bytes)))
                : "";
      first = false;
      std::string vs = "-";
      if (lru && lru->cost_saved > 0) vs = fmt::format("{:.2f}x", r.cost_saved / lru->cost_saved);
      std::string label = r.config.Label();
      if (p.markdown && r.config.policy == "cost" && vs != "-") vs = "**" + vs + "**";
      const std::string us_per_request =
          r.config.policy == "oracle"
              ? "-"
              : fmt::format("{:.2f}", 1e6 * r.wall_s / std::max<int64_t>(r.requests, 1));
      rows.push_back({budget, label, fmt::format("{:.1f}%", 100 * r.hit_ratio()),
                      fmt::format("{:.1f}%", 100 * r.byte_hit_ratio()),
                      Group(std::llround(r.cost_saved)),
                      fmt::format("{:.1f}%", savable > 0 ? 100 * r.cost_saved / savable : 0.0),
                      vs, us_per_request});
      if (with_control) {
        const Result* c = Find(results, "scan-control", pct, r.config.policy, r.config.half_life);
        std::vector<std::string> extra = {"-", "-"};
        if (c) {
          extra[0] = Group(std::llround(c->cost_saved));
          if (c->cost_saved > 0) {
            extra[1] = fmt::format("{:.1f}%", 100 * (1 - r.cost_saved / c->cost_saved));
          }
        }
        rows.back().insert(rows.back().end() - 1, extra.begin(), extra.end());
      }
    }
  }
  const char* bold = p.markdown ? "**" : "";
  std::cout << "\n" << bold << "Trace '" << t.name << "'" << bold << ": " << t.description
            << (p.markdown ? ".\n" : "\n  ") << Group(static_cast<int64_t>(t.requests.size()))
            << " requests, " << Group(t.distinct) << " distinct objects, "
            << Bytes(static_cast<double>(t.bytes_requested))
            << " requested; recompute cost of all requests " << Group(std::llround(t.cost_total))
            << " s, of which " << Group(std::llround(savable))
            << " s savable (all but each object's first request)"
            << (p.markdown ? ".\n\n" : "\n\n");
  PrintRows(rows, p.markdown);

  // Why: how full the cache is in entries, how long victims had been idle, and (scan
  // trace) how much of the budget the one-time scan objects hold.
  std::vector<std::vector<std::string>> diag;
  diag.push_back(
      {"budget", "policy", "avg entries cached", "victim idle for (accesses) p50 / p90"});
  if (with_control) diag[0].push_back("budget held by scan objects (avg)");
  for (double pct : p.budgets_pct) {
    bool first = true;
    for (const auto& r : results) {
      if (r.config.trace != t.name || r.config.budget_pct != pct || r.config.policy == "oracle") {
        continue;
      }
      diag.push_back({first ? fmt::format("{:g}%", pct) : "", r.config.Label(),
                      Group(std::llround(r.avg_entries)),
                      r.idle_at_eviction_p50 < 0
                          ? "-"
                          : Group(r.idle_at_eviction_p50) + " / " + Group(r.idle_at_eviction_p90)});
      if (with_control) diag.back().push_back(fmt::format("{:.1f}%", 100 * r.avg_scan_share));
      first = false;
    }
  }
  std::cout << "\n";
  PrintRows(diag, p.markdown);
}

void PrintAcrossRuns(const Params& p, const std::vector<std::unique_ptr<SeedRun>>& runs) {
  auto pct_cell = [](const Stat& s) {
    return fmt::format("{:.1f}% [{:.1f}–{:.1f}]", 100 * s.median, 100 * s.min, 100 * s.max);
  };
  auto ratio_cell = [&](const Stat& s, bool bold) {
    std::string m = fmt::format("{:.2f}x", s.median);
    if (bold && p.markdown) m = "**" + m + "**";
    return fmt::format("{} [{:.2f}–{:.2f}]", m, s.min, s.max);
  };
  std::cout << fmt::format(
      "\nAcross {} runs (seeds {}..{}; every run draws new objects, sizes, costs and "
      "requests): median [min–max]\n",
      runs.size(), runs.front()->seed, runs.back()->seed);
  for (const auto& t : runs.front()->traces) {
    if (t.name == "scan-control") continue;
    const bool scan = t.name == "scan";
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"budget", "policy", "hit ratio", "byte hit ratio", "% of savable saved",
                    "saved vs LRU"});
    if (scan) rows[0].push_back("lost to scans");
    for (double pct : p.budgets_pct) {
      bool first = true;
      for (const auto& r : runs.front()->results) {
        if (r.config.trace != t.name || r.config.budget_pct != pct) continue;
        const auto& c = r.config;
        auto stat = [&](const std::function<double(const Result&, const SeedRun&)>& fn) {
          return Summary(Across(runs, c.trace, pct, c.policy, c.half_life, fn));
        };
        rows.push_back(
            {first ? fmt::format("{:g}%", pct) : "", c.Label(),
             pct_cell(stat([](const Result& x, const SeedRun&) { return x.hit_ratio(); })),
             pct_cell(stat([](const Result& x, const SeedRun&) { return x.byte_hit_ratio(); })),
             pct_cell(stat(ShareOfSavable)),
             ratio_cell(stat(SavedVsLru), c.policy == "cost")});
        if (scan) rows.back().push_back(pct_cell(stat(LostToScans)));
        first = false;
      }
    }
    const char* bold = p.markdown ? "**" : "";
    std::cout << "\n" << bold << "Trace '" << t.name << "'" << bold << "\n\n";
    PrintRows(rows, p.markdown);
  }
}

void PrintVerdict(const Params& p, const std::vector<std::unique_ptr<SeedRun>>& runs) {
  bool any = false;
  for (double hl : p.half_lives) {
    std::string line;
    int met_all = 0, total = 0;
    for (double pct : p.budgets_pct) {
      auto ratios = Across(runs, "skewed", pct, "cost", hl, SavedVsLru);
      if (ratios.empty()) continue;
      const int met = static_cast<int>(std::count_if(ratios.begin(), ratios.end(),
                                                     [](double x) { return x >= 1.2; }));
      const Stat s = Summary(ratios);
      ++total;
      met_all += met == static_cast<int>(ratios.size());
      line += fmt::format("\n    {:g}%: {:.2f}x{} -- met in {} of {} run(s)", pct, s.median,
                          ratios.size() > 1 ? fmt::format(" median [{:.2f}–{:.2f}]", s.min, s.max)
                                            : std::string(),
                          met, ratios.size());
    }
    if (total == 0) continue;
    if (!any) {
      std::cout << "\nGoal: on the skewed trace the cost-aware policy saves >= 1.20x the "
                   "recompute seconds LRU saves\n";
    }
    any = true;
    std::cout << fmt::format("  cost-aware, half_life {:.0f}{}: met in all runs at {} of {} "
                             "budgets{}\n",
                             hl, hl == kServerHalfLife ? " (the server's default)" : "", met_all,
                             total, line);
  }
}

json ToJson(const Params& p, const std::vector<std::unique_ptr<SeedRun>>& runs,
            double total_wall_s) {
  json j;
  j["parameters"] = {{"seed", p.seed},
                     {"runs", p.runs},
                     {"objects", p.workload.objects},
                     {"requests", p.workload.requests},
                     {"zipf_s", p.workload.zipf_s},
                     {"size_median_mib", p.workload.size_median_mib},
                     {"size_sigma", p.workload.size_sigma},
                     {"cost_median_s", p.workload.cost_median_s},
                     {"cost_sigma", p.workload.cost_sigma},
                     {"cost_size_corr", p.workload.cost_size_corr},
                     {"scan_fraction", p.workload.scan_fraction},
                     {"scan_length", p.workload.scan_length},
                     {"budgets_pct", p.budgets_pct},
                     {"half_lives", p.half_lives},
                     {"quick", p.quick},
                     {"threads", p.threads}};
  j["wall_s"] = total_wall_s;
  for (const auto& run : runs) {
    json jr;
    jr["seed"] = run->seed;
    jr["hot_objects_bytes"] = run->w.hot_bytes;
    jr["wall_s"] = run->wall_s;
    for (const auto& t : run->traces) {
      jr["traces"].push_back({{"name", t.name},
                              {"description", t.description},
                              {"requests", t.requests.size()},
                              {"distinct_objects", t.distinct},
                              {"bytes_requested", t.bytes_requested},
                              {"cost_total_s", t.cost_total},
                              {"cost_compulsory_s", t.cost_compulsory}});
    }
    for (const auto& r : run->results) jr["results"].push_back(ResultJson(r, *run));
    j["runs"].push_back(std::move(jr));
  }
  return j;
}

}  // namespace quiver::policy_sim
