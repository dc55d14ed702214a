// GarbageSweeper: removes what no published entry references, once it is old enough that it
// cannot be a write in progress.
//
// Garbage comes from writers that died or lost: a data blob whose publish was refused and
// whose writer crashed before deleting it, a manifest of a version another writer won, a
// temporary of a dead process, a removal interrupted before its blob was deleted. A blob or
// manifest is referenced when the index's entry for the manifest's (key, version) names that
// manifest and that data blob. Anything else older than the grace period (default 1 h) goes.
// Any node may sweep; the index lease "sweep" lets one at a time do it.
//
// Thread-safety: Sweep() may be called from any thread; sweeps do not overlap.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include <arrow/result.h>

#include "common/clock.h"
#include "index/index.h"
#include "storage/blob_store.h"

namespace quiver {

struct SweepSummary {
  int64_t manifests_removed = 0;
  int64_t blobs_removed = 0;
  int64_t temporaries_removed = 0;
  bool skipped = false;  ///< another node held the sweep lease
  std::string ToString() const;
};

class GarbageSweeper {
 public:
  GarbageSweeper(BlobStore* store, Index* index, std::shared_ptr<Clock> clock, std::string node,
                 int64_t grace_ms)
      : store_(store), index_(index), clock_(std::move(clock)), node_(std::move(node)),
        grace_ms_(grace_ms) {}

  /// \brief Sweep once (if no other node is sweeping).
  arrow::Result<SweepSummary> Sweep();

 private:
  arrow::Status SweepUnderLease(SweepSummary* summary);

  BlobStore* store_;
  Index* index_;
  std::shared_ptr<Clock> clock_;
  std::string node_;
  int64_t grace_ms_;
  std::mutex mutex_;
};

}  // namespace quiver
