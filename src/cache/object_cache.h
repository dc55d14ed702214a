// ObjectCache: the engine behind Quiver's object API.
//
// Composes a BlobStore (where bytes live) and an Index (which versions exist). A put
// streams record batches into a new IPC stream blob, then -- under the key's lock --
// checks the compare-and-set condition, writes the manifest (the publication record in
// storage) and publishes the version in the index. Readers only ever see published
// versions, so nothing torn is served; a failed or abandoned put leaves nothing behind.
//
// Size budgets (Budget) are enforced at every publish: lower-scored keys are evicted
// before a new entry commits. Small hot entries are served from a MemoryTier. Entries may
// declare dependencies and tags; invalidating a key removes it and, transitively, everything
// that depends on it, and wins against a put or fill that started before it (each checks
// the generations of its dependencies when it commits).
//
// Lock order (outermost first): config lock; invalidation lock; a key lock; generations
// lock; then the leaves -- index, budget, memory tier, store (whose directory lock is its
// own leaf). The usage-save lock is taken alone, then the budget's. Nothing is called
// back into the QueryCache.
//
// Thread-safety: all methods are safe to call concurrently. A PutWriter belongs to one
// thread.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <arrow/io/interfaces.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>

#include "cache/budget.h"
#include "cache/entry_writer.h"
#include "cache/memory_tier.h"
#include "cache/recovery.h"
#include "common/clock.h"
#include "common/key.h"
#include "index/index.h"
#include "storage/blob_store.h"

namespace quiver {

struct ObjectCacheOptions {
  std::shared_ptr<BlobStore> store;
  std::shared_ptr<Index> index;
  std::shared_ptr<Clock> clock = Clock::System();
  /// Largest object one put may store. Default: 4 GiB.
  int64_t max_object_bytes = int64_t{4} << 30;
  /// Versions of each key kept readable. Default: 3.
  int64_t keep_versions = 3;
  /// Check every entry's checksum during recovery. Default: true.
  bool verify_on_startup = true;
  /// Run full validation (offsets, UTF-8, ...) on every batch put. Default: true.
  bool validate_full_on_put = true;
  /// Disk budget, entry limit, eviction policy.
  BudgetSettings budget;
  /// Bytes of the memory tier; 0 disables it. Default: 0.
  int64_t memory_size = 0;
  /// Largest entry the memory tier takes; 0: memory_size / 8.
  int64_t memory_max_entry_bytes = 0;
  /// Seconds between saves of the access histories (when they changed); 0: only when
  /// the cache is closed. Default: 30.
  double usage_save_interval_s = 30;
};

/// Settings that can change at run time (the config-set action); persisted in the store.
struct RuntimeSettings {
  std::optional<double> half_life;
  std::optional<int64_t> cache_size;
  std::optional<int64_t> memory_size;
};

/// One key as the entries listing shows it.
struct EntryInfo {
  EntryMeta latest;
  KeyUsage usage;
  bool in_memory = false;
};

/// A committed object version opened for reading.
struct OpenEntry {
  EntryMeta meta;
  std::shared_ptr<arrow::io::RandomAccessFile> file;
};

struct CacheStats {
  IndexStats index;
  int64_t puts = 0;          ///< committed puts
  int64_t put_failures = 0;  ///< puts that failed or were abandoned
  int64_t gets = 0;          ///< object reads asked for
  int64_t hits = 0;          ///< reads that found the object
  int64_t misses = 0;        ///< reads of a missing key or version
  int64_t not_modified = 0;  ///< conditional reads answered "not modified"
  int64_t evictions = 0;     ///< keys evicted to make room or by shrink
  int64_t invalidations = 0; ///< keys removed by invalidate / invalidate-tag / new versions
  int64_t not_admitted = 0;  ///< entries refused by the budget
  BudgetSettings budget;
  int64_t budget_used = 0;
  MemoryTierStats memory;
};

class ObjectCache;

/// Streams one object into the store. Destroying it before Commit() aborts the put.
class PutWriter {
 public:
  virtual ~PutWriter() = default;
  /// \brief Append a batch. Fails with CapacityError once the object exceeds
  /// max_object_bytes, and with Invalid if the batch is malformed.
  virtual arrow::Status Write(const arrow::RecordBatch& batch) = 0;
  /// \brief Finish the stream, make it durable and publish it as the next version.
  virtual arrow::Result<EntryMeta> Commit() = 0;
  /// \brief Discard everything written. Idempotent.
  virtual void Abort() = 0;
};

class ObjectCache {
 public:
  /// \brief Open the cache, rebuilding the index from storage (see recovery.h).
  static arrow::Result<std::unique_ptr<ObjectCache>> Open(ObjectCacheOptions options);

  /// Saves the access histories (see usage_snapshot.h).
  ~ObjectCache();
  ObjectCache(const ObjectCache&) = delete;
  ObjectCache& operator=(const ObjectCache&) = delete;

  const RecoverySummary& recovery() const { return recovery_; }

  /// \brief Start a put of `key` with `schema`. Fails fast if the compare-and-set
  /// condition already does not hold (it is checked again at commit).
  arrow::Result<std::unique_ptr<PutWriter>> BeginPut(const ObjectKey& key,
                                                     std::shared_ptr<arrow::Schema> schema,
                                                     PutOptions options = {});

  /// \brief Open `version` of `key` (latest if empty) for a client read, counting it in
  /// the stats. A missing key or version is std::nullopt.
  arrow::Result<std::optional<OpenEntry>> Get(const ObjectKey& key,
                                              std::optional<uint64_t> version);
  /// \brief Like Get, for metadata requests: not counted as a read.
  arrow::Result<std::optional<OpenEntry>> Peek(const ObjectKey& key,
                                               std::optional<uint64_t> version);

  /// \brief Start writing an entry under index key `key` (an object key or a query key),
  /// limited to `max_bytes`; `limit_name` names the limit in the error.
  arrow::Result<std::unique_ptr<EntryWriter>> BeginEntry(const std::string& key,
                                                         int64_t max_bytes,
                                                         std::string limit_name);
  /// \brief Open the latest version under an index key (objects or query results),
  /// without counting it as an object read.
  arrow::Result<std::optional<OpenEntry>> OpenLatest(const std::string& key);
  /// \brief Delete every version under an index key. Returns how many were removed.
  arrow::Result<int64_t> DeleteKey(const std::string& key);
  /// \brief Delete a query result if, under its key's lock, its latest version is expired
  /// at `now_ms` (a fresh refill published meanwhile is kept).
  arrow::Result<int64_t> DeleteKeyIfExpired(const std::string& key, int64_t now_ms);

  /// \brief Latest version of every object key starting with `prefix` (plain string
  /// prefix). Query results are not listed.
  arrow::Result<std::vector<EntryMeta>> List(const std::string& prefix);

  /// \brief Latest version number of `key`, 0 if absent.
  arrow::Result<uint64_t> LatestVersion(const ObjectKey& key);

  /// \brief Delete every version of `key`. Returns how many versions were removed.
  arrow::Result<int64_t> Delete(const ObjectKey& key);
  /// \brief Delete every key under a whole-segment prefix. Returns the keys removed and
  /// adds the number of versions removed to *versions.
  arrow::Result<std::vector<std::string>> DeletePrefix(const std::string& prefix,
                                                       int64_t* versions);

  /// \brief Count a conditional read answered "not modified".
  void CountNotModified() { ++not_modified_; }

  /// \brief Remove `key` and, if `cascade`, every key that depends on it, transitively.
  /// Returns the keys removed. Puts and fills that depend on any of them and started
  /// before this call will not commit.
  arrow::Result<std::vector<std::string>> Invalidate(const std::string& key, bool cascade);
  /// \brief Remove every key carrying `tag`, cascading. Returns the keys removed.
  arrow::Result<std::vector<std::string>> InvalidateTag(const std::string& tag);
  /// \brief A new version of query result `key` is being computed: what was computed
  /// from the previous one is invalidated now, and fills that read it will not commit.
  /// (Its readers see the new result before it commits, and may derive entries from it.)
  arrow::Status NewVersionComing(const std::string& key);
  /// \brief The first key or tag of `snapshot` invalidated since it was taken, if any.
  std::optional<std::string> ChangedSince(const GenerationSnapshot& snapshot);
  /// \brief Generations of `keys` and `tags` now, for a put or fill about to start.
  GenerationSnapshot Snapshot(const std::vector<std::string>& keys,
                              const std::vector<std::string>& tags);

  /// \brief Evict the lowest-scored key (`below_bytes` empty) or as many as needed to
  /// hold at most `below_bytes`. With `dry_run`, only say which. Returns the keys.
  arrow::Result<std::vector<std::string>> Shrink(std::optional<int64_t> below_bytes,
                                                 bool dry_run);
  /// \brief Apply (and persist) run-time settings, shrinking if the budget got smaller.
  arrow::Status Configure(const RuntimeSettings& settings);
  /// \brief Every key under `prefix` (plain string prefix), objects and query results.
  arrow::Result<std::vector<EntryInfo>> Entries(const std::string& prefix);

  arrow::Result<CacheStats> Stats();

  /// \brief Save every key's access history to the store if it changed since the last
  /// save (usage_snapshot.h). Also done periodically and when the cache is closed.
  arrow::Status SaveUsage();

  const ObjectCacheOptions& options() const { return options_; }

  /// \brief Publish a committed data blob as the next version of meta.key, under the
  /// key's lock (called by EntryWriter::Commit). Query keys keep one version.
  arrow::Result<EntryMeta> Publish(EntryMeta meta, PutOptions options);
  void CountPutFailure() { ++put_failures_; }

 private:
  explicit ObjectCache(ObjectCacheOptions options) : options_(std::move(options)) {}

  std::mutex& KeyLock(const std::string& key);
  arrow::Result<std::optional<OpenEntry>> OpenVersion(const std::string& key,
                                                      std::optional<uint64_t> version,
                                                      bool count_access);
  /// Remove the blobs of versions the index no longer lists.
  void DropBlobs(const std::vector<EntryMeta>& removed);
  /// Remove every version of `key` from index, store, memory tier and budget -- if
  /// `only_if_expired_at` is given, only if under the key's lock it is expired by then.
  arrow::Result<int64_t> RemoveKey(const std::string& key,
                                   std::optional<int64_t> only_if_expired_at = std::nullopt);
  arrow::Status EvictKeys(const std::vector<std::string>& keys);
  /// Drop all but the newest `keep` versions of `key`.
  arrow::Status TrimKey(const std::string& key, int64_t keep);
  /// Remove `seeds` and every key carrying `tag` (if not empty), and, if `cascade`, what
  /// depends on them, transitively; bump their generations. Returns the keys removed.
  arrow::Result<std::vector<std::string>> InvalidateClosure(std::vector<std::string> seeds,
                                                            bool cascade,
                                                            const std::string& tag);
  /// Invalidate (cascading) every entry that depends on `key`; `why` starts the log line.
  arrow::Status InvalidateDependents(const std::string& key, const char* why);
  uint64_t GenerationLocked(const std::string& name) const;
  std::optional<std::string> ChangedSinceLocked(const GenerationSnapshot& snapshot) const;
  void BumpLocked(const std::string& name);
  arrow::Status LoadRuntimeSettings();
  /// Restore the saved access histories into the budget; a bad snapshot is logged, not fatal.
  void LoadUsage();
  void UsageSaverLoop();
  arrow::Status ApplyRuntimeSettings(const RuntimeSettings& settings);

  ObjectCacheOptions options_;
  RecoverySummary recovery_;
  std::array<std::mutex, 64> key_locks_;
  std::unique_ptr<Budget> budget_;
  std::unique_ptr<MemoryTier> memory_;
  std::shared_mutex invalidation_mutex_;
  mutable std::mutex generations_mutex_;
  std::unordered_map<std::string, uint64_t> generations_;
  std::mutex config_mutex_;  // one Configure at a time
  std::mutex usage_mutex_;   // one SaveUsage at a time
  uint64_t usage_saved_tick_ = 0;
  std::mutex usage_saver_mutex_;
  std::condition_variable usage_saver_cv_;
  bool usage_saver_stopping_ = false;
  std::thread usage_saver_;
  std::atomic<int64_t> puts_{0}, put_failures_{0}, gets_{0}, hits_{0}, misses_{0},
      not_modified_{0}, evictions_{0}, invalidations_{0}, not_admitted_{0};
};

}  // namespace quiver
