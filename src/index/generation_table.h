// GenerationTable: the embedded index's generations (see index.h): one counter, and for each
// bumped name the counter value of its last bump.
//
// Bounded: past `max_names` names, the least recently bumped are forgotten, and snapshots
// older than the newest forgotten bump are refused as stale -- a snapshot that old could have
// missed one of them. With the default bound a put or fill is refused this way only if a
// million other names were bumped while it ran.
//
// Thread-safety: none; the embedded index serializes access.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace quiver {

class GenerationTable {
 public:
  explicit GenerationTable(size_t max_names = size_t{1} << 20) : max_names_(max_names) {}

  uint64_t counter() const { return counter_; }
  /// \brief Give `name` the next counter value.
  void Bump(const std::string& name);
  /// \brief The first of `names` bumped after `since` ("" if the snapshot is older than what
  /// the table remembers), or std::nullopt if none was.
  std::optional<std::string> ChangedSince(const std::vector<std::string>& names,
                                          uint64_t since) const;
  /// \brief Forget every bump: from now on, only snapshots taken after this call pass.
  void ForgetAll();

 private:
  size_t max_names_;
  uint64_t counter_ = 0;
  uint64_t forgotten_ = 0;  // newest bump no longer remembered
  std::unordered_map<std::string, uint64_t> by_name_;
  std::map<uint64_t, std::string> by_generation_;
};

}  // namespace quiver
