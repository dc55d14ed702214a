// Lower-case hexadecimal text of raw bytes (digests in keys, logs and tickets).
#pragma once

#include <cstddef>
#include <string>

namespace quiver {

inline std::string HexEncode(const unsigned char* bytes, size_t length) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (size_t i = 0; i < length; ++i) {
    out += kDigits[bytes[i] >> 4];
    out += kDigits[bytes[i] & 15];
  }
  return out;
}

}  // namespace quiver
