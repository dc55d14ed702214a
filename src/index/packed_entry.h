// PackedEntry: one version's EntryMeta as the embedded index keeps it in memory -- one heap
// block of about 100 bytes instead of an EntryMeta's ~400 bytes and seven strings.
//
// The names Quiver writes are recomputed instead of stored: a manifest named as
// NewManifestName does keeps its 16 random hex digits, a data blob named as NewDataBlobName
// does keeps its 32, and a 16-hex checksum or fingerprint keeps its 8 bytes. Anything else
// (names of earlier releases, of tests, other lengths) is kept as written. Pack checks the
// round trip: Unpack(key) always gives back exactly the entry that was packed.
//
// Layout: fixed fields at fixed offsets (flags, version, bytes, created_ms, cost_ms,
// expires_ms, rows, batches), then the variable ones in a fixed order, each present as the
// flags say.
//
// Thread-safety: a value type; const methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "index/byte_codec.h"
#include "index/entry.h"

namespace quiver {

class PackedEntry {
 public:
  PackedEntry() = default;
  PackedEntry(PackedEntry&&) noexcept = default;
  PackedEntry& operator=(PackedEntry&&) noexcept = default;

  /// \brief Pack `entry` (its key is not kept: the index holds it).
  static PackedEntry Pack(const EntryMeta& entry);
  /// \brief The entry, with `key` as its key.
  EntryMeta Unpack(const std::string& key) const;

  uint64_t version() const { return Fixed<uint64_t>(kVersionAt); }
  int64_t bytes() const { return Fixed<int64_t>(kBytesAt); }
  int64_t created_ms() const { return Fixed<int64_t>(kCreatedAt); }
  int64_t cost_ms() const { return Fixed<int64_t>(kCostAt); }
  int64_t expires_ms() const { return Fixed<int64_t>(kExpiresAt); }
  bool expired(int64_t now_ms) const { return expires_ms() != 0 && now_ms >= expires_ms(); }
  /// \brief The data blob's name (`key` names the entry: the blob's name never needs it).
  std::string blob() const;
  std::vector<std::string> depends_on() const;
  std::vector<std::string> tags() const;
  /// Bytes of the heap block (for tests and memory accounting).
  size_t packed_size() const { return size_; }

 private:
  static constexpr size_t kVersionAt = 1, kBytesAt = 9, kCreatedAt = 17, kCostAt = 25,
                          kExpiresAt = 33, kRowsAt = 41, kBatchesAt = 49, kFixedEnd = 57;

  template <typename T>
  T Fixed(size_t at) const {
    return static_cast<T>(codec::LoadU64(data_.get() + at));
  }
  struct Fields;
  Fields Decode() const;

  std::unique_ptr<char[]> data_;
  uint32_t size_ = 0;
};

}  // namespace quiver
