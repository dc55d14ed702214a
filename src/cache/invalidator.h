// Invalidator: removes an entry together with everything computed from it.
//
// Each step bumps the generations of a frontier of keys (or a tag) and collects what depends
// on them in one atomic index call (Index::BumpAndCollect), then removes the frontier: an
// entry being published meanwhile is either refused (its generation snapshot is older than
// the bump) or collected. So no lock is held across the cascade, and it is as safe across
// nodes as within one.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "cache/entry_store.h"

namespace quiver {

class Invalidator {
 public:
  explicit Invalidator(EntryStore* entries) : entries_(entries) {}

  /// \brief Remove `key` and, if `cascade`, every key that depends on it, transitively.
  /// Returns the keys removed. Puts and fills computed from any of them before this call do
  /// not publish.
  arrow::Result<std::vector<std::string>> Invalidate(const std::string& key, bool cascade);
  /// \brief Remove every key carrying `tag`, cascading. Returns the keys removed.
  arrow::Result<std::vector<std::string>> InvalidateTag(const std::string& tag);
  /// \brief A new version of query result `key` is being computed: what was computed from
  /// the previous one goes now, and fills computed from it will not publish.
  arrow::Status NewVersionComing(const std::string& key);
  /// \brief `key` just got a new version (its generation was bumped as it was published):
  /// remove what was computed from the previous one. `why` starts the log line.
  arrow::Status InvalidateDependents(const std::string& key, const char* why);

  int64_t invalidations() const { return invalidations_; }
  /// \brief Continue the count from a previous run's.
  void RestoreCount(int64_t invalidations) { invalidations_ += invalidations; }

 private:
  /// Bump and remove `keys` (and the keys carrying `tags`), then -- if `cascade` -- their
  /// dependents, level by level. Returns the keys removed.
  arrow::Result<std::vector<std::string>> Cascade(std::vector<std::string> keys,
                                                  std::vector<std::string> tags, bool cascade);

  /// Remove `dependents` of `key`, cascading, and log it (`why` starts the line).
  arrow::Status RemoveDependents(const std::string& key, std::vector<std::string> dependents,
                                 const char* why);

  EntryStore* entries_;
  std::atomic<int64_t> invalidations_{0};
};

}  // namespace quiver
