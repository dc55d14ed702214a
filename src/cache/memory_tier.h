// MemoryTier: small hot entries held in RAM, bounded in bytes, least recently used out.
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
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/io/interfaces.h>
#include <arrow/result.h>

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
  /// `max_entry_bytes` (0: an eighth of the capacity) are never promoted.
  MemoryTier(int64_t capacity, int64_t max_entry_bytes)
      : capacity_(capacity), max_entry_bytes_(max_entry_bytes) {}

  /// \brief The in-memory copy of `key`'s data blob `blob`, or nullptr.
  std::shared_ptr<arrow::io::RandomAccessFile> Lookup(const std::string& key,
                                                      const std::string& blob);
  /// \brief Copy (key, blob) -- `version` of `key` -- from `file` into memory if it is small
  /// enough, evicting least recently used copies to stay within capacity. Returns a reader
  /// of the copy (nullptr if none was made), so the caller need not read `file` again.
  arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> Promote(
      const std::string& key, uint64_t version, const std::string& blob,
      arrow::io::RandomAccessFile* file);
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
  std::list<Id> lru_;  // front: most recently used
  struct Slot {
    std::shared_ptr<arrow::Buffer> data;
    uint64_t version = 0;
    std::list<Id>::iterator position;
  };
  std::map<Id, Slot> slots_;
};

}  // namespace quiver
