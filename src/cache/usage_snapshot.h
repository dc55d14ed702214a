// Access histories saved across restarts.
//
// Eviction scores come from each key's access history (how often and how recently it was
// read), which lives in memory. The cache saves it to the store as one Arrow IPC file,
// `state/usage.arrow` -- one row per key: key, accesses, log_weight, last_tick,
// last_access_ms; the access counter it is relative to, and the cache's counters (puts, gets,
// hits, ... as quiver.counter.<name>), in the schema metadata -- every
// few seconds while it changes, and at shutdown; it reads it back at startup. A crash loses
// at most the accesses since the last save; an unreadable file loses the history only.
#pragma once

#include <memory>

#include <arrow/io/interfaces.h>
#include <arrow/result.h>

#include "index/embedded_index.h"

namespace quiver {

inline constexpr const char* kUsageBlob = "state/usage.arrow";

/// \brief Write a snapshot to `sink` as an Arrow IPC file (the sink is not closed).
arrow::Status WriteUsage(const UsageSnapshot& snapshot, int64_t saved_ms,
                         arrow::io::OutputStream* sink);

/// \brief Decode what WriteUsage wrote. Invalid names what is wrong with the file.
/// `*saved_ms` (if given) receives when it was saved.
arrow::Result<UsageSnapshot> DecodeUsage(std::shared_ptr<arrow::io::RandomAccessFile> file,
                                         int64_t* saved_ms = nullptr);

}  // namespace quiver
