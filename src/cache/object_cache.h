// ObjectCache: the object API's front -- put, get, conditional get, list, delete.
//
// A put streams record batches through Arrow's IPC writer into a new data blob (EntryWriter),
// then the Committer publishes it as the key's next version: compare-and-set, generations of
// what it depends on, and the budget are checked by the index in one step. Readers only ever
// see published versions, so nothing torn is served; a failed or abandoned put leaves nothing
// behind. Everything else -- storage, eviction, invalidation -- belongs to the parts the
// engine composes (engine.h); this class holds no state another node would need.
//
// Thread-safety: all methods are safe to call concurrently. A PutWriter belongs to one thread.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>

#include "cache/committer.h"
#include "cache/entry_store.h"
#include "cache/evictor.h"
#include "common/key.h"

namespace quiver {

/// What a client may ask of a put.
struct PutOptions {
  /// Compare-and-set: commit only if the key's latest version is this (0: create only).
  std::optional<uint64_t> if_version;
  /// Keys this entry was computed from; invalidating one of them invalidates it.
  std::vector<std::string> depends_on;
  /// Tags, e.g. "table:events"; invalidating a tag invalidates every entry carrying it.
  std::vector<std::string> tags;
  /// What losing the object would cost, in milliseconds of recomputation (the eviction
  /// score's cost). Default: the time the put took to receive.
  std::optional<int64_t> cost_ms;
  /// Append the rows to the latest version instead of replacing it (object_patch.h): the
  /// key must exist and the schema must be its schema. Published by compare-and-set on the
  /// latest version read when the put begins (if_version, if set, must be that version).
  bool patch = false;
};

/// A version read for a client: its parts, oldest first. A version put in full is one part;
/// a patched version is its base and every patch up to it -- or, when read `since` a version
/// of its own chain, only the patches after that one.
struct ObjectRead {
  std::vector<OpenEntry> parts;
  /// 0: the parts make the whole object; N: they are the patches after version N.
  uint64_t since = 0;
  const EntryMeta& meta() const { return parts.back().meta; }
};

struct ObjectCacheOptions {
  /// Largest object one put may store. Default: 4 GiB.
  int64_t max_object_bytes = int64_t{4} << 30;
  /// Versions of each key kept readable. Default: 3.
  int64_t keep_versions = 3;
  /// Run full validation (offsets, UTF-8, ...) on every batch put. Default: true.
  bool validate_full_on_put = true;
};

struct ObjectStats {
  int64_t puts = 0;          ///< committed puts
  int64_t put_failures = 0;  ///< puts that failed or were abandoned
  int64_t gets = 0;          ///< object reads asked for
  int64_t hits = 0;          ///< reads that found the object
  int64_t misses = 0;        ///< reads of a missing key or version
  int64_t not_modified = 0;  ///< conditional reads answered "not modified"
};

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
  ObjectCache(ObjectCacheOptions options, EntryStore* entries, Committer* committer,
              Evictor* evictor)
      : options_(options), entries_(entries), committer_(committer), evictor_(evictor) {}

  /// \brief Start a put of `key` with `schema`. Fails fast if the compare-and-set condition
  /// already does not hold (the publish checks it again).
  arrow::Result<std::unique_ptr<PutWriter>> BeginPut(const ObjectKey& key,
                                                     std::shared_ptr<arrow::Schema> schema,
                                                     PutOptions options = {});
  /// \brief Open `version` of `key` (latest if empty) for a client read, counting it. A
  /// missing key or version is std::nullopt.
  arrow::Result<std::optional<OpenEntry>> Get(const ObjectKey& key,
                                              std::optional<uint64_t> version);
  /// \brief Open `version` of `key` (latest if empty) with every part it is made of (see
  /// ObjectRead), counting one read. With `since` = N, a version of N's own chain is read as
  /// only the patches after N; anything else is read whole. A missing key or version is
  /// std::nullopt; a patched version whose base is no longer kept is a KeyError.
  arrow::Result<std::optional<ObjectRead>> Read(const ObjectKey& key,
                                                std::optional<uint64_t> version,
                                                std::optional<uint64_t> since = std::nullopt);
  /// \brief The parts of a version opened by Get or Peek (see Read), for metadata
  /// requests: not counted as a read, and not promoted to memory.
  arrow::Result<ObjectRead> Parts(OpenEntry last);
  /// \brief Like Get, for metadata requests: not counted as a read.
  arrow::Result<std::optional<OpenEntry>> Peek(const ObjectKey& key,
                                               std::optional<uint64_t> version);
  /// \brief Peek at a version List() returned, without looking it up again.
  arrow::Result<std::optional<OpenEntry>> Peek(EntryMeta listed);
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
  /// \brief The largest object one put may store (max_object_bytes).
  int64_t max_object_bytes() const { return options_.max_object_bytes; }
  /// \brief Count a put that failed before it reached the cache (bad request).
  void CountPutFailure() { ++put_failures_; }
  ObjectStats Stats() const;
  /// \brief Continue the counters from a previous run's (saved with the access histories).
  void RestoreCounters(const ObjectStats& saved);

 private:
  class Put;
  arrow::Result<ObjectRead> Complete(OpenEntry last, std::optional<uint64_t> since,
                                     bool promote);

  ObjectCacheOptions options_;
  EntryStore* entries_;
  Committer* committer_;
  Evictor* evictor_;
  std::atomic<int64_t> puts_{0}, put_failures_{0}, gets_{0}, hits_{0}, misses_{0},
      not_modified_{0};
};

}  // namespace quiver
