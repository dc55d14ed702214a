// LocalState: what an embedded node keeps of its index's volatile state in its data dir, so
// that it survives restarts -- the access histories behind eviction scores
// (state/usage.arrow, usage_snapshot.h) and the run-time settings (settings/runtime.json).
//
// Only for the embedded index: one process owns the data dir, so a single copy of each file
// is right. A shared index keeps this state itself (in Redis), and nodes sharing a data dir
// must not write these files.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include <arrow/result.h>

#include "cache/runtime_settings.h"
#include "common/clock.h"
#include "index/embedded_index.h"
#include "storage/blob_store.h"

namespace quiver {

inline constexpr const char* kRuntimeSettingsBlob = "settings/runtime.json";

class LocalState {
 public:
  LocalState(BlobStore* store, EmbeddedIndex* index, std::shared_ptr<Clock> clock)
      : store_(store), index_(index), clock_(std::move(clock)) {}

  /// \brief The settings config-set saved; none if there are none. An unreadable file is
  /// logged and ignored.
  arrow::Result<RuntimeSettings> LoadSettings();
  /// \brief Save the settings the index holds now (Configure merged the new ones in).
  arrow::Status SaveSettings();

  /// \brief Restore the saved access histories into the index (after it was rebuilt); a bad
  /// snapshot is logged, not fatal.
  void LoadUsage();
  /// \brief The saved access histories and counters, for the caller to load into the
  /// index itself (EmbeddedIndex::LoadRecovered); none if missing or unreadable (logged).
  /// Then call UsageLoaded with how many histories it restored.
  std::optional<UsageSnapshot> ReadUsage();
  void UsageLoaded(const UsageSnapshot* snapshot, int64_t restored);
  /// \brief Save every key's access history if it changed since the last save.
  arrow::Status SaveUsage();
  /// \brief Save the cache's counters with the histories (`read`), and give the saved ones
  /// to `restore` when they are loaded. Set before LoadUsage.
  void SetCounters(std::function<std::map<std::string, int64_t>()> read,
                   std::function<void(const std::map<std::string, int64_t>&)> restore) {
    read_counters_ = std::move(read);
    restore_counters_ = std::move(restore);
  }

 private:
  BlobStore* store_;
  EmbeddedIndex* index_;
  std::shared_ptr<Clock> clock_;
  std::mutex settings_mutex_;
  std::mutex usage_mutex_;
  uint64_t usage_saved_tick_ = 0;
  int64_t usage_saved_ms_ = 0;  // when the file ReadUsage read was saved
  std::map<std::string, int64_t> counters_saved_;
  std::function<std::map<std::string, int64_t>()> read_counters_;
  std::function<void(const std::map<std::string, int64_t>&)> restore_counters_;
};

}  // namespace quiver
