#include "index/packed_entry.h"

#include <array>
#include <atomic>
#include <cstring>
#include <mutex>
#include <string_view>

#include "common/hex.h"
#include "index/byte_codec.h"


namespace quiver {

namespace {

enum Flag : uint8_t {
  kManifestPacked = 1,      // manifest = prefix(key) + version + node + 8 random bytes
  kBlobPacked = 2,          // blob = data/<xx>/node-<16 random bytes>.arrows
  kFingerprintPacked = 4,   // 16 hex digits as 8 bytes
  kChecksumPacked = 8,
  kHasQuery = 16,           // source, query, tenant
  kHasLinks = 32,           // depends_on, tags
  kHasKeyId = 64,
  kIsPatch = 128,           // base_version
};
// The node id is a number of the interned ones, or (kNodeAsText) written out.
constexpr uint64_t kNodeAsText = 0;

using codec::PutStr;
using codec::PutStrs;
using codec::PutU64;

// The value of a lower-case hex digit, -1 for anything else (upper case too: it would not
// come back as written).
constexpr std::array<int8_t, 256> kLowerHex = [] {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<int8_t>(c - 'a' + 10);
  return t;
}();
int LowerHexDigit(char c) { return kLowerHex[static_cast<uint8_t>(c)]; }

// `hex` (even length, lower case) as bytes, into *out (replacing it); false if it is not
// that.
bool HexBytes(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  out->resize(hex.size() / 2);
  char* to = out->data();
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = LowerHexDigit(hex[i]), lo = LowerHexDigit(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    *to++ = static_cast<char>(hi << 4 | lo);
  }
  return true;
}

std::string BytesHex(std::string_view bytes) {
  return HexEncode(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

// SanitizeNodeId of the node every entry of a node has: computed once per thread.
const std::string& Sanitized(const std::string& node) {
  thread_local std::string last_node, last_sanitized;
  if (node != last_node || last_sanitized.empty()) {
    last_node = node;
    last_sanitized = SanitizeNodeId(node);
  }
  return last_sanitized;
}

std::string ManifestOf(const std::string& key, uint64_t version, const std::string& node,
                       std::string_view random_hex) {
  // manifests/<key>/@v/<20-digit version>-<node>-<random>.json, as NewManifestName writes
  std::string digits = std::to_string(version);
  const std::string& sanitized = Sanitized(node);
  std::string out;
  out.reserve(40 + key.size() + sanitized.size() + random_hex.size());
  out.append(kManifestRoot).append(key).append("/@v/");
  out.append(digits.size() < 20 ? 20 - digits.size() : 0, '0').append(digits);
  out.append("-").append(sanitized).append("-").append(random_hex).append(".json");
  return out;
}

std::string BlobOf(const std::string& node, std::string_view random_hex) {
  // data/<xx>/<node>-<random>.arrows, as NewDataBlobName writes
  const std::string& sanitized = Sanitized(node);
  std::string out;
  out.reserve(20 + sanitized.size() + random_hex.size());
  out.append(kDataRoot).append(random_hex.substr(0, 2)).append("/").append(sanitized);
  out.append("-").append(random_hex).append(".arrows");
  return out;
}

// The random hex digits of `name` if it ends "-<n hex><suffix>".
std::string_view RandomPart(std::string_view name, size_t n, std::string_view suffix) {
  if (name.size() < n + suffix.size() + 1 || name.substr(name.size() - suffix.size()) != suffix) {
    return {};
  }
  auto part = name.substr(name.size() - suffix.size() - n, n);
  if (name[name.size() - suffix.size() - n - 1] != '-') return {};
  return part;
}

// Node ids, interned: an entry keeps a small number instead of the text. A process sees
// few (its own, and those of the nodes that wrote its data before); past kMaxNodes, ids are
// kept as text. Append-only and never freed, so readers need no lock.
constexpr uint32_t kMaxNodes = 4096;
std::atomic<const std::string*> interned_nodes[kMaxNodes];
std::atomic<uint32_t> interned_count{0};

// The number of `node`, or kMaxNodes if the table is full.
uint32_t InternNode(const std::string& node) {
  thread_local uint32_t last = kMaxNodes;
  if (last < kMaxNodes && *interned_nodes[last].load(std::memory_order_acquire) == node) {
    return last;
  }
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  const uint32_t count = interned_count.load(std::memory_order_relaxed);
  for (uint32_t i = 0; i < count; ++i) {
    if (*interned_nodes[i].load(std::memory_order_relaxed) == node) return last = i;
  }
  if (count == kMaxNodes) return kMaxNodes;
  interned_nodes[count].store(new std::string(node), std::memory_order_release);
  interned_count.store(count + 1, std::memory_order_release);
  return last = count;
}

}  // namespace

struct PackedEntry::Fields {
  std::string manifest, blob, fingerprint, checksum, key_id, source, query, tenant;
  std::string manifest_random;  // hex, when packed
  std::vector<std::string> depends_on, tags;
  uint64_t base_version = 0;
};

PackedEntry PackedEntry::Pack(const EntryMeta& e) {
  uint8_t flags = 0;
  // Scratch (a load packs a million entries): each is written whole before it is used.
  thread_local std::string manifest_bytes, blob_bytes, fp_bytes, sum_bytes;
  auto manifest_random = RandomPart(e.manifest, 16, ".json");
  if (!manifest_random.empty() && HexBytes(manifest_random, &manifest_bytes) &&
      ManifestOf(e.key, e.version, e.node, manifest_random) == e.manifest) {
    flags |= kManifestPacked;
  }
  auto blob_random = RandomPart(e.blob, 32, ".arrows");
  if (!blob_random.empty() && HexBytes(blob_random, &blob_bytes) &&
      BlobOf(e.node, blob_random) == e.blob) {
    flags |= kBlobPacked;
  }
  // HexBytes takes lower case only: these come back exactly as written.
  if (e.schema_fingerprint.size() == 16 && HexBytes(e.schema_fingerprint, &fp_bytes)) {
    flags |= kFingerprintPacked;
  }
  if (e.checksum.size() == 16 && HexBytes(e.checksum, &sum_bytes)) flags |= kChecksumPacked;
  if (!e.source.empty() || !e.query.empty()) flags |= kHasQuery;
  if (!e.depends_on.empty() || !e.tags.empty()) flags |= kHasLinks;
  if (!e.key_id.empty()) flags |= kHasKeyId;
  if (e.is_patch()) flags |= kIsPatch;

  thread_local std::string out;  // scratch: a load packs a million entries
  out.clear();
  out.push_back(static_cast<char>(flags));
  codec::PutVarint(&out, e.version);
  for (int64_t v : {e.bytes, e.created_ms, e.cost_ms, e.expires_ms, e.rows, e.batches}) {
    codec::PutVarint(&out, static_cast<uint64_t>(v));
  }
  const uint32_t node = InternNode(e.node);
  if (node < kMaxNodes) {
    codec::PutVarint(&out, uint64_t{node} + 1);
  } else {
    codec::PutVarint(&out, kNodeAsText);
    PutStr(&out, e.node);
  }
  if (flags & kManifestPacked) out += manifest_bytes;
  else PutStr(&out, e.manifest);
  if (flags & kBlobPacked) out += blob_bytes;
  else PutStr(&out, e.blob);
  if (flags & kFingerprintPacked) out += fp_bytes;
  else PutStr(&out, e.schema_fingerprint);
  if (flags & kChecksumPacked) out += sum_bytes;
  else PutStr(&out, e.checksum);
  if (flags & kHasKeyId) PutStr(&out, e.key_id);
  if (flags & kHasQuery) {
    PutStr(&out, e.source);
    PutStr(&out, e.query);
    PutStr(&out, e.tenant);
  }
  if (flags & kHasLinks) {
    PutStrs(&out, e.depends_on);
    PutStrs(&out, e.tags);
  }
  if (flags & kIsPatch) PutU64(&out, e.base_version);
  char size[10];
  std::string_view size_bytes;
  {
    thread_local std::string varint;
    varint.clear();
    codec::PutVarint(&varint, out.size());
    std::memcpy(size, varint.data(), varint.size());
    size_bytes = std::string_view(size, varint.size());
  }
  PackedEntry packed;
  packed.data_.reset(new char[size_bytes.size() + out.size()]);
  std::memcpy(packed.data_.get(), size_bytes.data(), size_bytes.size());
  std::memcpy(packed.data_.get() + size_bytes.size(), out.data(), out.size());
  return packed;
}

PackedEntry::Head PackedEntry::Numbers() const {
  Head h;
  const char* p = data_.get();
  const uint64_t size = codec::LoadVarint(&p);
  h.end = p + size;
  h.flags = static_cast<uint8_t>(*p++);
  h.version = codec::LoadVarint(&p);
  for (int64_t* v : {&h.bytes, &h.created_ms, &h.cost_ms, &h.expires_ms, &h.rows, &h.batches}) {
    *v = static_cast<int64_t>(codec::LoadVarint(&p));
  }
  const uint64_t node = codec::LoadVarint(&p);
  if (node != kNodeAsText) {
    h.node = interned_nodes[node - 1].load(std::memory_order_acquire);
  } else {
    const uint32_t n = codec::LoadU32(p);
    h.node_text = std::string_view(p + 4, n);
    p += 4 + n;
  }
  h.rest = p;
  return h;
}

size_t PackedEntry::packed_size() const {
  return static_cast<size_t>(Numbers().end - data_.get());
}

PackedEntry::Fields PackedEntry::Decode(const Head& head) const {
  // Pack wrote it: the reads cannot run past the end.
  Fields f;
  const uint8_t flags = head.flags;
  codec::Reader c(std::string_view(head.rest, static_cast<size_t>(head.end - head.rest)));
  auto raw_hex = [&c](size_t n) {
    std::string_view v;
    c.Raw(n, &v);
    return BytesHex(v);
  };
  auto str = [&c] {
    std::string s;
    c.Str(&s);
    return s;
  };
  if (flags & kManifestPacked) f.manifest_random = raw_hex(8);
  else f.manifest = str();
  if (flags & kBlobPacked) {
    f.blob = BlobOf(head.node ? *head.node : std::string(head.node_text), raw_hex(16));
  }
  else f.blob = str();
  f.fingerprint = (flags & kFingerprintPacked) ? raw_hex(8) : str();
  f.checksum = (flags & kChecksumPacked) ? raw_hex(8) : str();
  if (flags & kHasKeyId) f.key_id = str();
  if (flags & kHasQuery) {
    f.source = str();
    f.query = str();
    f.tenant = str();
  }
  if (flags & kHasLinks) {
    c.Strs(&f.depends_on);
    c.Strs(&f.tags);
  }
  if (flags & kIsPatch) c.U64(&f.base_version);
  return f;
}

EntryMeta PackedEntry::Unpack(const std::string& key) const {
  const Head h = Numbers();
  Fields f = Decode(h);
  EntryMeta e;
  e.key = key;
  e.version = h.version;
  e.bytes = h.bytes;
  e.created_ms = h.created_ms;
  e.cost_ms = h.cost_ms;
  e.expires_ms = h.expires_ms;
  e.rows = h.rows;
  e.batches = h.batches;
  e.node = h.node ? *h.node : std::string(h.node_text);
  e.manifest = f.manifest_random.empty() ? std::move(f.manifest)
                                         : ManifestOf(key, e.version, e.node, f.manifest_random);
  e.blob = std::move(f.blob);
  e.schema_fingerprint = std::move(f.fingerprint);
  e.checksum = std::move(f.checksum);
  e.key_id = std::move(f.key_id);
  e.source = std::move(f.source);
  e.query = std::move(f.query);
  e.tenant = std::move(f.tenant);
  e.depends_on = std::move(f.depends_on);
  e.tags = std::move(f.tags);
  e.base_version = f.base_version;
  return e;
}

std::string PackedEntry::blob() const {
  // The blob's name follows the manifest's: only those two are read (a publish compares it).
  const Head h = Numbers();
  codec::Reader c(std::string_view(h.rest, static_cast<size_t>(h.end - h.rest)));
  std::string_view raw;
  std::string text;
  if (h.flags & kManifestPacked) c.Raw(8, &raw);
  else c.Str(&text);
  if (!(h.flags & kBlobPacked)) {
    c.Str(&text);
    return text;
  }
  c.Raw(16, &raw);
  return BlobOf(h.node ? *h.node : std::string(h.node_text), BytesHex(raw));
}
std::vector<std::string> PackedEntry::depends_on() const {
  const Head h = Numbers();
  return (h.flags & kHasLinks) ? Decode(h).depends_on : std::vector<std::string>{};
}
std::string PackedEntry::tenant(const std::string& key) const {
  const Head h = Numbers();
  return (h.flags & kHasQuery) ? Decode(h).tenant : KeyTenant(key);
}

std::vector<std::string> PackedEntry::tags() const {
  const Head h = Numbers();
  return (h.flags & kHasLinks) ? Decode(h).tags : std::vector<std::string>{};
}

}  // namespace quiver
