// Synthetic workloads of the eviction-policy trace simulator (bench/policy_sim.cc): objects
// with heterogeneous sizes and recompute costs, and request traces over them.
//
// Traces (all from one seed; every random draw is made with std::mt19937_64 and
// policy_sim_workload.cc's own transforms rather than <random>'s distributions, whose
// algorithms differ between standard libraries):
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
// Thread-safety: a Workload and its Traces are plain values, read-only once generated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace quiver::policy_sim {

/// What the workload is drawn from.
struct WorkloadParams {
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
  std::vector<std::string> traces = {"skewed", "scan"};
};

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

/// \brief Draw the objects of run seed `seed` and the traces `p.traces` over them, in that
/// order ("scan" is followed by its "scan-control"), each with its totals filled in.
///
/// REQUIRES: `*w` and `*traces` are empty. Throws std::runtime_error if the scans need more
/// objects than a uint32_t id can name.
void GenerateWorkload(const WorkloadParams& p, uint64_t seed, Workload* w,
                      std::vector<Trace>* traces);

}  // namespace quiver::policy_sim
