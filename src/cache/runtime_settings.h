// Run-time settings: what the config-set action may change while the cache runs. They are
// stored in the index (Index::GetSettings), so in shared mode every node uses the same ones;
// an embedded node also keeps them in its data dir (local_state.h).
//
// Thread-safety: plain value type.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <arrow/result.h>

namespace quiver {

struct RuntimeSettings {
  std::optional<double> half_life;
  std::optional<int64_t> cache_size;
  std::optional<int64_t> memory_size;

  /// \brief Check ranges; the error names the setting.
  arrow::Status Validate() const;
  /// \brief As stored in the index: name -> JSON value.
  std::map<std::string, std::string> ToMap() const;
  /// \brief Read what ToMap() wrote; unknown names are ignored (a newer node's settings).
  static arrow::Result<RuntimeSettings> FromMap(const std::map<std::string, std::string>& map);

  bool empty() const { return !half_life && !cache_size && !memory_size; }
};

}  // namespace quiver
