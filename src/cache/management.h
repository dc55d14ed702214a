// Management: the admin operations -- invalidate, shrink, run-time settings, the entries
// listing and statistics -- over the parts the engine composes.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "cache/entry_store.h"
#include "cache/evictor.h"
#include "cache/invalidator.h"
#include "cache/local_state.h"
#include "cache/object_cache.h"
#include "cache/runtime_settings.h"

namespace quiver {

/// One key as the entries listing shows it.
struct EntryInfo {
  EntryMeta latest;
  KeyUsage usage;
  bool in_memory = false;
};

struct CacheStats {
  std::string node;
  std::string index_kind;  ///< Index::Describe()
  bool shared = false;
  IndexHealth health;
  IndexStats index;
  ObjectStats objects;
  int64_t evictions = 0;      ///< keys evicted by this node to make room or by shrink
  int64_t invalidations = 0;  ///< keys removed by invalidate / invalidate-tag / new versions
  int64_t not_admitted = 0;   ///< entries refused by the budget
  int64_t reads_without_index = 0;  ///< reads served from manifests (index unavailable)
  int64_t damaged = 0;  ///< stored entries that failed authentication, taken out of service
  BudgetSettings budget;
  MemoryTierStats memory;
  bool has_disk_tier = false;
  DiskTierStats disk;  ///< the node-local disk tier (a shared store only)
};

class Management {
 public:
  Management(EntryStore* entries, Evictor* evictor, Invalidator* invalidator,
             ObjectCache* objects, LocalState* local_state)
      : entries_(entries),
        evictor_(evictor),
        invalidator_(invalidator),
        objects_(objects),
        local_state_(local_state) {}

  arrow::Result<std::vector<std::string>> Invalidate(const std::string& key, bool cascade) {
    return invalidator_->Invalidate(key, cascade);
  }
  arrow::Result<std::vector<std::string>> InvalidateTag(const std::string& tag) {
    return invalidator_->InvalidateTag(tag);
  }
  arrow::Result<std::vector<std::string>> Shrink(std::optional<int64_t> below_bytes,
                                                 bool dry_run) {
    return evictor_->Shrink(below_bytes, dry_run);
  }
  /// \brief Change run-time settings for every node: stored in the index (and the data dir
  /// of an embedded node), applied here, announced to the others; then evict to fit.
  arrow::Status Configure(const RuntimeSettings& settings);
  /// \brief Apply the settings stored in the index (at startup; when another node changed
  /// them). Returns them.
  arrow::Result<std::map<std::string, std::string>> ReloadSettings();
  /// \brief Every key under `prefix` (plain string prefix), objects and query results.
  arrow::Result<std::vector<EntryInfo>> Entries(const std::string& prefix);
  arrow::Result<CacheStats> Stats();
  /// \brief One tenant's totals (Index::TenantStats) and its budget (none: unlimited).
  struct TenantUsage {
    IndexStats totals;
    std::optional<TenantBudget> budget;
  };
  arrow::Result<TenantUsage> TenantStats(const std::string& tenant);

 private:
  arrow::Status Apply(const RuntimeSettings& settings);

  EntryStore* entries_;
  Evictor* evictor_;
  Invalidator* invalidator_;
  ObjectCache* objects_;
  LocalState* local_state_;
  std::mutex config_mutex_;  // one Configure at a time
};

}  // namespace quiver
