// PackedEntry: one version's EntryMeta as the embedded index keeps it in memory -- a pointer
// to one heap block of about 56 bytes instead of an EntryMeta's ~400 bytes and seven strings.
//
// The names Quiver writes are recomputed instead of stored: a manifest named as
// NewManifestName does keeps its 16 random hex digits, a data blob named as NewDataBlobName
// does keeps its 32, and a 16-hex checksum or fingerprint keeps its 8 bytes. The node id is
// interned (a process keeps one copy of each node id it has seen -- there are few -- and an
// entry its number). Anything
// else (names of earlier releases, of tests, other lengths) is kept as written. Pack checks
// the round trip: Unpack(key) always gives back exactly the entry that was packed.
//
// Layout: the block's length and the flags, the numbers as varints (version, bytes,
// created_ms, cost_ms, expires_ms, rows, batches), the node id's number, then the
// variable fields in a fixed order, each present as the flags say.
//
// Thread-safety: a value type; const methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
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
  /// \brief True for a default-constructed (or moved-from) one.
  bool empty() const { return data_ == nullptr; }
  /// \brief The entry, with `key` as its key.
  EntryMeta Unpack(const std::string& key) const;

  uint64_t version() const { return Numbers().version; }
  int64_t bytes() const { return Numbers().bytes; }
  int64_t created_ms() const { return Numbers().created_ms; }
  int64_t cost_ms() const { return Numbers().cost_ms; }
  int64_t expires_ms() const { return Numbers().expires_ms; }
  bool expired(int64_t now_ms) const { return expires_ms() != 0 && now_ms >= expires_ms(); }
  /// \brief The data blob's name (`key` names the entry: the blob's name never needs it).
  std::string blob() const;
  std::vector<std::string> depends_on() const;
  std::vector<std::string> tags() const;
  /// \brief EntryTenant of the entry, whose key is `key`.
  std::string tenant(const std::string& key) const;
  /// Bytes of the heap block (for tests and memory accounting).
  size_t packed_size() const;

 private:
  struct Head {
    uint8_t flags = 0;
    uint64_t version = 0;
    int64_t bytes = 0, created_ms = 0, cost_ms = 0, expires_ms = 0, rows = 0, batches = 0;
    const std::string* node = nullptr;  ///< interned, or null and the id is node_text
    std::string_view node_text;
    const char* rest = nullptr;  ///< the variable fields
    const char* end = nullptr;   ///< of the block
  };
  Head Numbers() const;
  struct Fields;
  Fields Decode(const Head& head) const;

  std::unique_ptr<char[]> data_;
};

}  // namespace quiver
