#include "cache/garbage_sweeper.h"

#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cache/lease_run.h"

namespace quiver {

namespace {

constexpr const char* kSweepLease = "sweep";
constexpr int64_t kSweepLeaseTtlMs = 60 * 1000;  // renewed while the sweep runs
constexpr size_t kLookupBatch = 512;

}  // namespace

std::string SweepSummary::ToString() const {
  return fmt::format("removed {} manifests, {} data blobs and {} temporaries no entry references",
                     manifests_removed, blobs_removed, temporaries_removed);
}

arrow::Result<SweepSummary> GarbageSweeper::Sweep() {
  std::lock_guard<std::mutex> lock(mutex_);
  SweepSummary summary;
  LeaseRunOptions lease;
  lease.name = kSweepLease;
  lease.node = node_;
  lease.ttl_ms = kSweepLeaseTtlMs;
  ARROW_ASSIGN_OR_RAISE(auto run, RunUnderLease(index_, lease, [&](const LeaseRef&) {
    return SweepUnderLease(&summary);
  }));
  summary.skipped = !run.ran;
  if (summary.manifests_removed + summary.blobs_removed + summary.temporaries_removed > 0) {
    spdlog::info("garbage sweep: {}", summary.ToString());
  }
  return summary;
}

arrow::Status GarbageSweeper::SweepUnderLease(SweepSummary* summary) {
  const int64_t settled_before = clock_->NowMillis() - grace_ms_;
  // Listed before the manifests are checked: a blob committed after this listing is not
  // considered, and one listed here was committed before its manifest was read below.
  ARROW_ASSIGN_OR_RAISE(auto blobs, store_->List(kDataRoot));
  ARROW_ASSIGN_OR_RAISE(auto manifests, store_->List(kManifestRoot));
  std::set<std::string> referenced;
  for (size_t start = 0; start < manifests.size(); start += kLookupBatch) {
    std::vector<std::pair<std::string, uint64_t>> lookups;
    std::vector<const BlobInfo*> infos;
    for (size_t i = start; i < std::min(manifests.size(), start + kLookupBatch); ++i) {
      auto named = ParseManifestName(manifests[i].name);
      if (!named) continue;  // not a manifest of ours: leave it alone
      lookups.emplace_back(named->key, named->version);
      infos.push_back(&manifests[i]);
    }
    ARROW_ASSIGN_OR_RAISE(auto entries, index_->GetMany(lookups));
    for (size_t i = 0; i < entries.size(); ++i) {
      const auto& entry = entries[i];
      if (entry && entry->manifest == infos[i]->name) {
        referenced.insert(entry->blob);
        continue;
      }
      if (infos[i]->modified_ms >= settled_before) continue;  // maybe being published now
      ARROW_RETURN_NOT_OK(store_->Delete(infos[i]->name));
      ++summary->manifests_removed;
    }
  }
  for (const auto& info : blobs) {
    // A blob is published within moments of being committed, so one unreferenced after the
    // grace period belongs to a writer that died or lost.
    if (referenced.count(info.name) || info.modified_ms >= settled_before) continue;
    ARROW_RETURN_NOT_OK(store_->Delete(info.name));
    ++summary->blobs_removed;
  }
  ARROW_ASSIGN_OR_RAISE(summary->temporaries_removed,
                        store_->RemoveTemporaries(/*own=*/false, settled_before));
  return arrow::Status::OK();
}

}  // namespace quiver
