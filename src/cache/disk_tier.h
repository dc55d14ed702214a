// DiskTier: copies of entries' data blobs on this node's local disk, in front of a shared
// store (S3). Bounded in bytes; the lowest-scored copies go first, by the same cost-aware
// policy as the cache itself (cost x recency-weighted hits / size).
//
// A copy is made while a blob is first read from the shared store (the reader is wrapped:
// reading it front to back writes the copy as it goes, with no second download), and by
// the filling node while it writes the blob. Copies are named like the blobs they copy; a
// blob name is unique to one write and never reused, so a copy can never be taken for
// another entry, and the tier never has to refresh anything: callers look copies up only
// for the blob the index names as current. A copy the index no longer names (removed,
// invalidated) is dropped when the removal is announced, or ages out.
//
// Copies left by an earlier run are adopted at start-up (they are still exact copies).
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <arrow/io/interfaces.h>
#include <arrow/result.h>

#include "index/entry.h"
#include "policy/eviction_queue.h"
#include "storage/blob_store.h"

namespace quiver {

struct DiskTierStats {
  int64_t bytes = 0;
  int64_t entries = 0;
  int64_t capacity = 0;
  int64_t hits = 0;          ///< reads served from a copy
  int64_t copies_made = 0;   ///< copies written (on first read or during a fill)
  int64_t copy_failures = 0; ///< copies abandoned (a local write failed)
  int64_t damaged = 0;       ///< copies found damaged and dropped
};

class DiskTier : public std::enable_shared_from_this<DiskTier> {
 public:
  /// \brief Copies live in `local`; `capacity` bytes in all; entries above
  /// `max_entry_bytes` (0: capacity / 8) are never copied.
  DiskTier(std::shared_ptr<BlobStore> local, int64_t capacity, int64_t max_entry_bytes,
           std::shared_ptr<const EvictionPolicy> policy);

  /// \brief Adopt the copies an earlier run left (and remove its unfinished ones).
  arrow::Status Load();

  /// \brief The local copy of `meta`'s data blob, or nullptr. Counts a hit.
  arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> Lookup(const EntryMeta& meta);
  /// \brief Wrap `remote`, a reader of `meta`'s blob in the shared store, so that reading it
  /// front to back leaves a copy here. Returns `remote` itself when no copy is to be made
  /// (too large, already held, another reader is copying it).
  std::shared_ptr<arrow::io::RandomAccessFile> CopyOnRead(
      const EntryMeta& meta, std::shared_ptr<arrow::io::RandomAccessFile> remote);
  /// \brief Wrap `shared`, a writer of a new blob in the shared store, so that a copy is
  /// written here too; it is kept once Admit() is told the entry was published.
  std::unique_ptr<BlobWriter> TeeWriter(std::unique_ptr<BlobWriter> shared);
  /// \brief The entry `meta` was published (its blob was written through TeeWriter):
  /// account its copy, with the entry's cost.
  void Admit(const EntryMeta& meta);
  /// \brief Drop the copy of `blob` (removed, invalidated, never published).
  void Erase(const std::string& blob);
  /// \brief Drop a copy that failed to read back (damaged); counted.
  void Quarantine(const std::string& blob, const arrow::Status& why);

  bool Contains(const std::string& blob);
  DiskTierStats Stats();
  const std::shared_ptr<BlobStore>& local() const { return local_; }

 private:
  friend class CopyingReader;
  friend class TeeBlobWriter;
  /// A copy of `blob` was committed locally: account it and evict to fit.
  void Added(const std::string& blob, int64_t bytes, double cost_s, bool new_copy = true);
  void CopyEnded(const std::string& blob, bool kept);
  /// Forget the copy of `blob` and delete its file (if held, or `damaged`: counted).
  void Drop(const std::string& blob, bool damaged);
  int64_t EntryLimit() const { return max_entry_bytes_ > 0 ? max_entry_bytes_ : capacity_ / 8; }

  std::shared_ptr<BlobStore> local_;
  const int64_t capacity_;
  const int64_t max_entry_bytes_;
  std::mutex mutex_;
  EvictionQueue queue_;            // keyed by blob name
  std::set<std::string> copying_;  // copies being written
  std::map<std::string, int64_t> unadmitted_;  // written by a fill, not yet published
  DiskTierStats stats_;
};

}  // namespace quiver
