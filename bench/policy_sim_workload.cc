#include "policy_sim_workload.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "policy_sim_format.h"

namespace quiver::policy_sim {
namespace {

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

Object DrawObject(const WorkloadParams& p, Rng* rng) {
  const double z_size = rng->Normal();
  const double z_own = rng->Normal();
  const double rho = p.cost_size_corr;
  double bytes = p.size_median_mib * kMiB * std::exp(p.size_sigma * z_size);
  bytes = std::clamp(bytes, static_cast<double>(kKiB), static_cast<double>(kGiB));
  double cost = p.cost_median_s *
                std::exp(p.cost_sigma * (rho * z_size + std::sqrt(1 - rho * rho) * z_own));
  return {static_cast<int64_t>(std::llround(bytes)), cost};
}

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

}  // namespace

void GenerateWorkload(const WorkloadParams& p, uint64_t seed, Workload* workload,
                      std::vector<Trace>* traces) {
  Workload& w = *workload;

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
      traces->push_back(std::move(t));
      traces->push_back(std::move(control));
    } else {
      traces->push_back(std::move(t));
    }
  }
  w.keys.reserve(w.objects.size());
  for (size_t i = 0; i < w.objects.size(); ++i) {
    w.keys.push_back((static_cast<int64_t>(i) < w.n_hot ? "hot/" : "cold/") + std::to_string(i));
  }
  for (auto& t : *traces) Summarize(w, &t);
}

}  // namespace quiver::policy_sim
