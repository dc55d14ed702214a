// Byte units and the number formatting of the eviction-policy trace simulator's text (trace
// descriptions, tables and logs; see bench/policy_sim.cc).
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace quiver::policy_sim {

constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * kKiB;
constexpr int64_t kGiB = 1024 * kMiB;

/// \brief Format `v` with a comma between groups of three digits: 1,234,567.
inline std::string Group(int64_t v) {
  const std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out = v < 0 ? "-" : "";
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

/// \brief Format a byte count in KiB, MiB or GiB.
inline std::string Bytes(double b) {
  if (b >= kGiB) return fmt::format("{:.1f} GiB", b / kGiB);
  if (b >= kMiB) return fmt::format("{:.0f} MiB", b / kMiB);
  return fmt::format("{:.0f} KiB", b / kKiB);
}

}  // namespace quiver::policy_sim
