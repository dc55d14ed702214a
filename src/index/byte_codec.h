// Little-endian fixed-width integers and length-prefixed strings, appended to a std::string
// and read back with bounds checks: the encoding of the index journal's records and of
// packed index entries.
//
// Thread-safety: plain functions and a value type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace quiver::codec {

inline void PutU64(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out->append(b, 8);
}
inline void PutU32(std::string* out, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out->append(b, 4);
}
inline void PutStr(std::string* out, std::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}
inline void PutStrs(std::string* out, const std::vector<std::string>& v) {
  PutU32(out, static_cast<uint32_t>(v.size()));
  for (const auto& s : v) PutStr(out, s);
}

/// LEB128: 7 bits a byte, low first (1 byte below 128, 10 at most).
inline void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
/// Reads what PutVarint wrote at `*p`, advancing it; the caller knows it is there.
inline uint64_t LoadVarint(const char** p) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    const auto b = static_cast<uint8_t>(*(*p)++);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (b < 0x80 || shift >= 63) return v;
  }
}

inline uint64_t LoadU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
inline uint32_t LoadU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

/// Reads what the Put functions wrote; every read returns false past the end.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  bool U64(uint64_t* v) {
    if (bytes_.size() < 8) return false;
    *v = LoadU64(bytes_.data());
    bytes_.remove_prefix(8);
    return true;
  }
  bool I64(int64_t* v) {
    uint64_t u;
    if (!U64(&u)) return false;
    *v = static_cast<int64_t>(u);
    return true;
  }
  bool U32(uint32_t* v) {
    if (bytes_.size() < 4) return false;
    *v = LoadU32(bytes_.data());
    bytes_.remove_prefix(4);
    return true;
  }
  bool U8(uint8_t* v) {
    if (bytes_.empty()) return false;
    *v = static_cast<uint8_t>(bytes_[0]);
    bytes_.remove_prefix(1);
    return true;
  }
  /// `n` raw bytes.
  bool Raw(size_t n, std::string_view* v) {
    if (bytes_.size() < n) return false;
    *v = bytes_.substr(0, n);
    bytes_.remove_prefix(n);
    return true;
  }
  bool Str(std::string* s) {
    uint32_t n;
    std::string_view v;
    if (!U32(&n) || !Raw(n, &v)) return false;
    s->assign(v);
    return true;
  }
  bool Strs(std::vector<std::string>* v) {
    uint32_t n;
    if (!U32(&n) || n > bytes_.size()) return false;
    v->resize(n);
    for (auto& s : *v) {
      if (!Str(&s)) return false;
    }
    return true;
  }
  bool done() const { return bytes_.empty(); }

 private:
  std::string_view bytes_;
};

}  // namespace quiver::codec
