// MemoryTier: small hot entries held in RAM, bounded in bytes; the lowest-scored copies go
// first, by the cache's eviction policy (cost-aware by default; LRU unless one is given).
//
// An entry is promoted when it is read (a hit) and is small enough; later reads are served
// from the copy in memory instead of the store. Copies are identified by (key, data blob):
// a blob name is unique to one write and never reused, so a copy can never be taken for a
// later version (version numbers restart after a delete), and one promoted just as its
// version was removed is never served, only aged out. The tier never refreshes anything.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/io/interfaces.h>
#include <arrow/result.h>

#include "policy/eviction_queue.h"

namespace quiver {

struct MemoryTierStats {
  int64_t bytes = 0;
  int64_t entries = 0;
  int64_t hits = 0;
  int64_t promotions = 0;
  int64_t capacity = 0;
};

class MemoryTier {
 public:
  /// \brief `capacity` bytes in all (0 disables the tier); entries above
  /// `max_entry_bytes` (0: an eighth of the capacity) are never promoted. Copies are
  /// evicted by `policy` (null: least recently used).
  MemoryTier(int64_t capacity, int64_t max_entry_bytes,
             std::shared_ptr<const EvictionPolicy> policy = nullptr)
      : capacity_(capacity),
        max_entry_bytes_(max_entry_bytes),
        queue_(policy ? std::move(policy) : std::make_shared<LruPolicy>()) {}

  /// \brief The in-memory copy of `key`'s data blob `blob`, or nullptr.
  std::shared_ptr<arrow::io::RandomAccessFile> Lookup(const std::string& key,
                                                      const std::string& blob);
  /// \brief Copy (key, blob) -- `version` of `key`, which cost `cost_s` to compute -- from
  /// `file` into memory if it is small enough, evicting the lowest-scored copies to stay
  /// within capacity. Returns a reader of the copy (nullptr if none was made), so the caller
  /// need not read `file` again.
  arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> Promote(
      const std::string& key, uint64_t version, const std::string& blob,
      arrow::io::RandomAccessFile* file, double cost_s = 0);
  /// A copy held: which version of which key, by its data blob.
  struct Copy {
    std::string key;
    uint64_t version = 0;
    std::string blob;
  };
  /// \brief Every copy held (to check them against the index after missed announcements).
  std::vector<Copy> Copies();
  /// \brief Forget one version of `key`, by its data blob.
  void Erase(const std::string& key, const std::string& blob);
  /// \brief Change the capacity, evicting as needed (the largest entry stays as configured).
  void SetCapacity(int64_t capacity);
  bool Contains(const std::string& key, const std::string& blob);
  MemoryTierStats Stats();

 private:
  using Id = std::pair<std::string, std::string>;  // key, data blob
  void EvictLocked();
  int64_t EntryLimitLocked() const {
    return max_entry_bytes_ > 0 ? max_entry_bytes_ : capacity_ / 8;
  }

  std::mutex mutex_;
  int64_t capacity_;
  const int64_t max_entry_bytes_;  // 0: capacity_ / 8
  int64_t bytes_ = 0;
  int64_t hits_ = 0;
  int64_t promotions_ = 0;
  EvictionQueue queue_;  // of the copies' data blobs (unique names)
  struct Slot {
    std::shared_ptr<arrow::Buffer> data;
    uint64_t version = 0;
  };
  std::map<Id, Slot> slots_;
  std::map<std::string, Id> by_blob_;
};

}  // namespace quiver
