// RunUnderLease: one node of the cluster at a time runs a piece of background work (evicting,
// sweeping garbage, reclaiming expired results, rebuilding the index) under a named index
// lease, renewed while the work runs so that a long run never outlives it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <arrow/result.h>

#include "index/index.h"

namespace quiver {

struct LeaseRunOptions {
  std::string name;      ///< the lease, e.g. "evict"
  std::string node;      ///< this node's id (the owner)
  std::string endpoint;  ///< where other nodes reach it ("" if they need not)
  int64_t ttl_ms = 0;    ///< renewed every third of it while the work runs
  /// How long to keep trying while another node holds the lease (0: try once).
  int64_t wait_ms = 0;
};

/// Whether the work ran; if not, who held the lease.
struct LeaseRun {
  bool ran = false;
  LeaseHolder holder;
};

/// \brief Take the lease, run `work` under it, release it. The work's error is returned; a
/// lease held by another (past `wait_ms`) is not an error: the work did not run.
arrow::Result<LeaseRun> RunUnderLease(Index* index, const LeaseRunOptions& options,
                                      const std::function<arrow::Status(const LeaseRef&)>& work);

}  // namespace quiver
