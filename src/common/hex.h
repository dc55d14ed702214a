// Lower-case hexadecimal text: of raw bytes (digests in keys, logs and tickets), and of
// random bytes (unique names, secrets); and the value of one hex digit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>

namespace quiver {

/// The value of hex digit `c` (either case), or -1 if it is not one.
inline int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

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

/// \brief `bytes` random bytes as hex, from a fast per-thread generator: for names that
/// must not collide, not for secrets.
inline std::string RandomHex(size_t bytes) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string raw(bytes, '\0');
  for (size_t i = 0; i < bytes; i += 8) {
    uint64_t word = rng();
    for (size_t j = i; j < bytes && j < i + 8; ++j, word >>= 8) raw[j] = static_cast<char>(word);
  }
  return HexEncode(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

/// \brief `bytes` bytes from the operating system's entropy source, as hex: for secrets.
inline std::string SecretHex(size_t bytes) {
  std::random_device device;
  std::string raw(bytes, '\0');
  for (auto& c : raw) c = static_cast<char>(device());
  return HexEncode(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

}  // namespace quiver
