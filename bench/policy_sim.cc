// Eviction-policy trace simulator: replays synthetic workloads with heterogeneous sizes and
// recompute costs against the real policy code (quiver::EvictionQueue with LruPolicy or
// CostAwarePolicy, exactly as the engine in src/cache/budget.cc drives it) and reports, per
// policy and cache budget, the hit ratio, the byte hit ratio and the recompute seconds saved.
//
// Traces (all from one seed; every random draw is made with std::mt19937_64 and this file's
// own transforms rather than <random>'s distributions, whose algorithms differ between
// standard libraries):
//   skewed  M requests to N objects with Zipf(s) popularity; sizes and recompute costs are
//           lognormal; popularity, size and cost are mutually independent (by default: the
//           log of the cost can be correlated with the log of the size).
//   scan    the same objects and Zipf mix, with sequential one-time scans spliced in: after
//           every block of Zipf requests, a scan reads `scan_length` distinct cold objects
//           (same size and cost distributions) that are never requested again, so that
//           scans make up `scan_fraction` of the requests. The same trace with the scans
//           taken out is replayed too ("scan-control"), to measure what the scans cost each
//           policy on the very same Zipf requests.
//
// Replay of one request for key k, as the server does it:
//   hit  (k is in the queue): EvictionQueue::Touch(k); its recompute cost counts as saved.
//   miss: the cost is spent; then k is admitted unless it is larger than the budget:
//         PickVictims (room for `bytes` and one entry, no entry limit, k protected),
//         Remove each victim, Insert(k).
//
// Several runs (seeds) are replayed; the first is printed in full, then medians and ranges
// across runs, then whether the goal (cost-aware saves >= 1.2x LRU on the skewed trace) holds.
//
// Usage: quiver_policy_sim [--quick] [--runs N] [--json FILE] [--markdown] [--help]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "policy/eviction_policy.h"
#include "policy/eviction_queue.h"

namespace {

using nlohmann::json;

constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * kKiB;
constexpr int64_t kGiB = 1024 * kMiB;
constexpr double kServerHalfLife = 1000;  // BudgetSettings::half_life's default

struct Params {
  uint64_t seed = 1;
  int runs = 5;
  int64_t objects = 20000;
  int64_t requests = 1000000;
  double zipf_s = 1.0;
  double size_median_mib = 1.0;
  double size_sigma = 1.5;
  double cost_median_s = 1.0;
  double cost_sigma = 1.5;
  double cost_size_corr = 0;  // correlation of ln(cost) with ln(size)
  double scan_fraction = 0.3;
  int64_t scan_length = 5000;
  std::vector<double> budgets_pct = {1, 5, 20};
  std::vector<double> half_lives = {kServerHalfLife, 100000};
  std::vector<std::string> traces = {"skewed", "scan"};
  int threads = 1;
  bool quick = false;
  bool markdown = false;
  bool no_oracle = false;
  bool verbose = false;
  std::string json_path;
};

// ---------------------------------------------------------------------------------------
// Random numbers: mt19937_64's output is fixed by the standard, the <random> distributions
// are not, so the transforms are spelled out here.

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  /// Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }
  /// Uniform integer in [0, n); the modulo bias is below 2^-40 for the n used here.
  uint64_t Below(uint64_t n) { return gen_() % n; }
  /// Standard normal (Box-Muller; one of the pair is dropped to keep the state simple).
  double Normal() {
    double u1 = 1.0 - Uniform();  // (0, 1]
    double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
  double LogNormal(double median, double sigma) { return median * std::exp(sigma * Normal()); }

 private:
  std::mt19937_64 gen_;
};

/// Independent stream `stream` of run seed `seed` (SplitMix64 finalizer), so that changing
/// one part of the workload (e.g. the scan fraction) leaves the other draws alone.
uint64_t SubSeed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// Zipf over ranks 0..n-1 (P(rank r) ∝ (r+1)^-s) by inverse CDF.
class Zipf {
 public:
  Zipf(int64_t n, double s) : cdf_(n) {
    double sum = 0;
    for (int64_t r = 0; r < n; ++r) cdf_[r] = (sum += std::pow(static_cast<double>(r + 1), -s));
    for (double& c : cdf_) c /= sum;
  }
  int64_t Sample(Rng* rng) const {
    double u = rng->Uniform();
    auto it = std::upper_bound(cdf_.begin(), cdf_.end(), u);
    return std::min<int64_t>(it - cdf_.begin(), static_cast<int64_t>(cdf_.size()) - 1);
  }

 private:
  std::vector<double> cdf_;
};

// ---------------------------------------------------------------------------------------
// Workload.

struct Object {
  int64_t bytes;
  double cost_s;
};

struct Workload {
  std::vector<Object> objects;     // hot objects [0, n_hot), then the scans' cold objects
  std::vector<std::string> keys;   // one per object
  int64_t n_hot = 0;
  int64_t hot_bytes = 0;           // sum over the hot objects; budgets are % of this
  std::vector<int64_t> rank_to_object;  // Zipf rank -> hot object (a random permutation)
};

Object DrawObject(const Params& p, Rng* rng) {
  const double z_size = rng->Normal();
  const double z_own = rng->Normal();
  const double rho = p.cost_size_corr;
  double bytes = p.size_median_mib * kMiB * std::exp(p.size_sigma * z_size);
  bytes = std::clamp(bytes, static_cast<double>(kKiB), static_cast<double>(kGiB));
  double cost = p.cost_median_s *
                std::exp(p.cost_sigma * (rho * z_size + std::sqrt(1 - rho * rho) * z_own));
  return {static_cast<int64_t>(std::llround(bytes)), cost};
}

struct Trace {
  std::string name;
  std::string description;
  std::vector<uint32_t> requests;  // object ids
  // Derived once from the request list.
  int64_t distinct = 0;
  int64_t bytes_requested = 0;
  double cost_total = 0;
  double cost_compulsory = 0;  // first request of each object: no cache can save these
};

void Summarize(const Workload& w, Trace* t) {
  std::vector<char> seen(w.objects.size(), 0);
  for (uint32_t id : t->requests) {
    const Object& o = w.objects[id];
    t->bytes_requested += o.bytes;
    t->cost_total += o.cost_s;
    if (!seen[id]) {
      seen[id] = 1;
      ++t->distinct;
      t->cost_compulsory += o.cost_s;
    }
  }
}

std::string Group(int64_t v) {
  const std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out = v < 0 ? "-" : "";
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string Bytes(double b) {
  if (b >= kGiB) return fmt::format("{:.1f} GiB", b / kGiB);
  if (b >= kMiB) return fmt::format("{:.0f} MiB", b / kMiB);
  return fmt::format("{:.0f} KiB", b / kKiB);
}

// ---------------------------------------------------------------------------------------
// Simulation.

struct Config {
  std::string trace;
  double budget_pct = 0;
  int64_t budget_bytes = 0;
  std::string policy;  // "lru", "cost" or "oracle"
  double half_life = 0;
  std::string Label() const {
    if (policy == "lru") return "LRU";
    if (policy == "oracle") return "static oracle (ref.)";
    return half_life == kServerHalfLife ? fmt::format("cost, hl={:.0f} (server)", half_life)
                                        : fmt::format("cost, hl={:.0f}", half_life);
  }
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

Result Replay(const Workload& w, const Trace& t, const Config& c) {
  std::shared_ptr<const quiver::EvictionPolicy> policy;
  if (c.policy == "lru") {
    policy = std::make_shared<quiver::LruPolicy>();
  } else {
    policy = std::make_shared<quiver::CostAwarePolicy>(c.half_life);
  }
  quiver::EvictionQueue queue(policy);
  Result r;
  r.config = c;
  std::vector<uint64_t> idle_at_eviction;
  double sum_entries = 0, sum_cold_bytes = 0;
  int64_t cold_bytes = 0;
  auto start = std::chrono::steady_clock::now();
  for (uint32_t id : t.requests) {
    const Object& o = w.objects[id];
    const std::string& key = w.keys[id];
    sum_entries += static_cast<double>(queue.size());
    sum_cold_bytes += static_cast<double>(cold_bytes);
    ++r.requests;
    r.bytes_requested += o.bytes;
    r.cost_total += o.cost_s;
    if (queue.Touch(key)) {
      ++r.hits;
      r.bytes_hit += o.bytes;
      r.cost_saved += o.cost_s;
      continue;
    }
    // Miss: recomputed, then offered to the cache as the engine does (Budget::Reserve).
    if (o.bytes > c.budget_bytes) {
      ++r.not_admitted;
      continue;
    }
    bool fits = false;
    // As Budget::Reserve for a key that is not cached: room for its bytes and one more
    // entry, no entry limit, the key itself protected.
    auto victims = queue.PickVictims(
        o.bytes, /*incoming_entries=*/1, c.budget_bytes, /*max_entries=*/0,
        [&key](const std::string& k) { return k == key; }, &fits);
    if (!fits) {
      ++r.not_admitted;
      continue;
    }
    for (const auto& v : victims) {
      const quiver::PolicyEntry* e = queue.Find(v);
      idle_at_eviction.push_back(queue.tick() - e->last_tick);
      if (v.starts_with("cold/")) cold_bytes -= e->bytes;
      queue.Remove(v);
    }
    r.evictions += static_cast<int64_t>(victims.size());
    queue.Insert(key, o.bytes, o.cost_s);
    if (static_cast<int64_t>(id) >= w.n_hot) cold_bytes += o.bytes;
  }
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (r.requests > 0) {
    r.avg_entries = sum_entries / r.requests;
    r.avg_scan_share = sum_cold_bytes / r.requests / static_cast<double>(c.budget_bytes);
  }
  if (!idle_at_eviction.empty()) {
    auto quantile = [&](double q) {
      auto it = idle_at_eviction.begin() +
                static_cast<ptrdiff_t>(q * static_cast<double>(idle_at_eviction.size() - 1));
      std::nth_element(idle_at_eviction.begin(), it, idle_at_eviction.end());
      return static_cast<int64_t>(*it);
    };
    r.idle_at_eviction_p50 = quantile(0.5);
    r.idle_at_eviction_p90 = quantile(0.9);
  }
  r.final_entries = static_cast<int64_t>(queue.size());
  r.final_bytes = queue.total_bytes();
  return r;
}

/// Reference, not a policy and not an upper bound: a fixed set chosen knowing the whole
/// trace, greedily by requests * cost / bytes until the budget is full (objects that do not
/// fit are skipped). Each object's first request is a miss (it is computed, then kept).
Result StaticOracle(const Workload& w, const Trace& t, const Config& c) {
  auto start = std::chrono::steady_clock::now();
  std::vector<int64_t> count(w.objects.size(), 0);
  for (uint32_t id : t.requests) ++count[id];
  std::vector<uint32_t> ids;
  for (uint32_t id = 0; id < count.size(); ++id) {
    if (count[id] > 1) ids.push_back(id);
  }
  auto value = [&](uint32_t id) {
    return static_cast<double>(count[id] - 1) * w.objects[id].cost_s / w.objects[id].bytes;
  };
  std::sort(ids.begin(), ids.end(), [&](uint32_t a, uint32_t b) {
    double va = value(a), vb = value(b);
    return va != vb ? va > vb : a < b;
  });
  std::vector<char> kept(w.objects.size(), 0);
  int64_t used = 0;
  Result r;
  r.config = c;
  for (uint32_t id : ids) {
    if (used + w.objects[id].bytes <= c.budget_bytes) {
      kept[id] = 1;
      used += w.objects[id].bytes;
      ++r.final_entries;
    }
  }
  r.final_bytes = used;
  std::vector<char> seen(w.objects.size(), 0);
  for (uint32_t id : t.requests) {
    const Object& o = w.objects[id];
    ++r.requests;
    r.bytes_requested += o.bytes;
    r.cost_total += o.cost_s;
    if (kept[id] && seen[id]) {
      ++r.hits;
      r.bytes_hit += o.bytes;
      r.cost_saved += o.cost_s;
    }
    seen[id] = 1;
  }
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

// ---------------------------------------------------------------------------------------
// Output.

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

void PrintRows(const std::vector<std::vector<std::string>>& rows, bool markdown);

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

struct SeedRun {
  uint64_t seed = 0;
  Workload w;
  std::vector<Trace> traces;
  std::vector<Result> results;
  double wall_s = 0;
};

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

json ToJson(const Params& p, const std::vector<std::unique_ptr<SeedRun>>& runs,
            double total_wall_s) {
  json j;
  j["parameters"] = {{"seed", p.seed},
                     {"runs", p.runs},
                     {"objects", p.objects},
                     {"requests", p.requests},
                     {"zipf_s", p.zipf_s},
                     {"size_median_mib", p.size_median_mib},
                     {"size_sigma", p.size_sigma},
                     {"cost_median_s", p.cost_median_s},
                     {"cost_sigma", p.cost_sigma},
                     {"cost_size_corr", p.cost_size_corr},
                     {"scan_fraction", p.scan_fraction},
                     {"scan_length", p.scan_length},
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

/// Draws the workload of one seed and replays every trace, budget and policy.
std::unique_ptr<SeedRun> RunSeed(const Params& p, uint64_t seed) {
  auto run = std::make_unique<SeedRun>();
  run->seed = seed;
  Workload& w = run->w;
  const auto start = std::chrono::steady_clock::now();

  // Objects: the hot set first, each with its own size and cost; popularity ranks are a
  // random permutation so that rank, size and cost are independent.
  w.n_hot = p.objects;
  Rng object_rng(SubSeed(seed, 0));
  for (int64_t i = 0; i < p.objects; ++i) {
    w.objects.push_back(DrawObject(p, &object_rng));
    w.hot_bytes += w.objects.back().bytes;
  }
  w.rank_to_object.resize(p.objects);
  std::iota(w.rank_to_object.begin(), w.rank_to_object.end(), 0);
  Rng perm_rng(SubSeed(seed, 1));
  for (int64_t i = p.objects - 1; i > 0; --i) {
    std::swap(w.rank_to_object[i], w.rank_to_object[perm_rng.Below(i + 1)]);
  }
  Zipf zipf(p.objects, p.zipf_s);

  for (const auto& name : p.traces) {
    Trace t;
    t.name = name;
    Rng req_rng(SubSeed(seed, name == "skewed" ? 2 : 3));
    if (name == "skewed") {
      t.description = fmt::format(
          "Zipf(s={:g}) over {} objects; sizes lognormal (median {:g} MiB, sigma {:g}); costs "
          "lognormal (median {:g} s, sigma {:g}), {}",
          p.zipf_s, Group(p.objects), p.size_median_mib, p.size_sigma, p.cost_median_s,
          p.cost_sigma,
          p.cost_size_corr == 0 ? std::string("independent of size")
                                : fmt::format("ln-correlated with size (r={:g})",
                                              p.cost_size_corr));
      t.requests.reserve(p.requests);
      for (int64_t i = 0; i < p.requests; ++i) {
        t.requests.push_back(static_cast<uint32_t>(w.rank_to_object[zipf.Sample(&req_rng)]));
      }
    } else {
      // Blocks of Zipf requests, each followed by one scan of scan_length new cold objects.
      const int64_t zipf_block = std::max<int64_t>(
          0, std::llround(p.scan_length * (1 - p.scan_fraction) / p.scan_fraction));
      t.description = fmt::format(
          "the skewed mix with sequential one-time scans: after every {} Zipf requests, a "
          "scan reads {} new cold object(s) (same size/cost distributions) once; {:.3g}% of "
          "requests are scans",
          Group(zipf_block), Group(p.scan_length),
          100.0 * p.scan_length / static_cast<double>(p.scan_length + zipf_block));
      Rng cold_rng(SubSeed(seed, 4));
      t.requests.reserve(p.requests);
      auto full = [&] { return static_cast<int64_t>(t.requests.size()) >= p.requests; };
      while (!full()) {
        for (int64_t i = 0; i < zipf_block && !full(); ++i) {
          t.requests.push_back(static_cast<uint32_t>(w.rank_to_object[zipf.Sample(&req_rng)]));
        }
        for (int64_t i = 0; i < p.scan_length && !full(); ++i) {
          if (w.objects.size() >= UINT32_MAX) throw std::runtime_error("too many objects");
          t.requests.push_back(static_cast<uint32_t>(w.objects.size()));
          w.objects.push_back(DrawObject(p, &cold_rng));
        }
      }
    }
    if (name == "scan") {
      Trace control;
      control.name = "scan-control";
      control.description = "the scan trace with its scans taken out";
      for (uint32_t id : t.requests) {
        if (id < w.n_hot) control.requests.push_back(id);
      }
      run->traces.push_back(std::move(t));
      run->traces.push_back(std::move(control));
    } else {
      run->traces.push_back(std::move(t));
    }
  }
  w.keys.reserve(w.objects.size());
  for (size_t i = 0; i < w.objects.size(); ++i) {
    w.keys.push_back((static_cast<int64_t>(i) < w.n_hot ? "hot/" : "cold/") + std::to_string(i));
  }
  for (auto& t : run->traces) Summarize(w, &t);

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
                           seed, Group(p.objects), Bytes(static_cast<double>(w.hot_bytes)),
                           Group(p.requests), configs.size());
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

}  // namespace

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
  app.add_option("--objects", p.objects, "Number of hot objects (Zipf popularity)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  app.add_option("--requests", p.requests, "Requests per trace")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000000}));
  app.add_option("--zipf", p.zipf_s, "Zipf exponent s of the popularity")->capture_default_str();
  app.add_option("--size-median-mib", p.size_median_mib, "Median object size (MiB), lognormal")
      ->capture_default_str();
  app.add_option("--size-sigma", p.size_sigma,
                 "Sigma of ln(size); sizes clamped to [1 KiB, 1 GiB]")
      ->capture_default_str();
  app.add_option("--cost-median", p.cost_median_s, "Median recompute cost (s), lognormal")
      ->capture_default_str();
  app.add_option("--cost-sigma", p.cost_sigma, "Sigma of ln(cost)")->capture_default_str();
  app.add_option("--cost-size-corr", p.cost_size_corr,
                 "Correlation of ln(cost) with ln(size); 0: independent, 1: cost grows with size")
      ->capture_default_str()
      ->check(CLI::Range(-1.0, 1.0));
  app.add_option("--scan-fraction", p.scan_fraction,
                 "Share of the scan trace's requests that are scans")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 0.95));
  app.add_option("--scan-length", p.scan_length, "Distinct cold objects read by one scan")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  app.add_option("--budgets", p.budgets_pct, "Budgets in % of the hot objects' total bytes")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--half-lives", p.half_lives,
                 "half_life values of the cost-aware policy (the server's default is 1000)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--traces", p.traces, "Traces to run: skewed, scan")
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
    if (app.count("--objects") == 0) p.objects = 2000;
    if (app.count("--requests") == 0) p.requests = 100000;
    if (app.count("--scan-length") == 0) p.scan_length = 500;
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
  std::sort(p.traces.begin(), p.traces.end(), std::greater<>());  // skewed first
  p.traces.erase(std::unique(p.traces.begin(), p.traces.end()), p.traces.end());

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
      runs.size(), first.seed, Group(p.objects), Bytes(static_cast<double>(first.w.hot_bytes)),
      Bytes(static_cast<double>(first.w.hot_bytes) / p.objects));
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
