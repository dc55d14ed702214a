// FillPump: drives a QueryStream into a Fill -- the loop shared by a node executing a query
// (its database's stream, teed into the store) and a node following another's execution (the
// peer's stream, not stored).
//
// Each batch is encoded once by Arrow's IPC writer; the same payload goes to the fill's
// readers and, while the result is still being cached, to the EntryWriter. A store failure or
// the result outgrowing its limit stops caching but not the readers' stream.
//
// Thread-safety: one pump per fill, on the thread that drives it.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include <arrow/result.h>

#include "cache/entry_writer.h"
#include "cache/fill.h"
#include "exec/source.h"

namespace quiver {

/// Why a result larger than max_entry_bytes is not cached (what its readers are told).
inline constexpr const char* kTooLargeToCache =
    "result exceeds max_entry_bytes; streamed but not cached";

struct PumpResult {
  arrow::Status status;       ///< OK: the stream ended; otherwise why it stopped
  bool entry_failed = false;  ///< the entry stopped being written (the result is not cached)
};

/// \brief Copy `stream` into `fill` (and `entry`, when not null) until it ends, fails, or
/// `should_stop` (asked before each batch, told whether the entry failed) gives a reason to
/// stop: a non-empty reason cancels the stream.
PumpResult PumpStream(QueryStream* stream, Fill* fill, EntryWriter* entry,
                      const std::function<std::string(bool entry_failed)>& should_stop);

}  // namespace quiver
