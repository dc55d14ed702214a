// PayloadSource: the IPC messages of one response, in order, whatever holds them -- the
// stored parts of an entry (read from their files as they are) or a fill still running (the
// payloads its query encodes, as they arrive). Interfaces other than Flight (HTTP) send these
// payloads with their own framing; Flight has its own streams (entry_stream.h, fill_stream.h).
//
// Thread-safety: a PayloadSource belongs to one reader thread.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include <arrow/ipc/writer.h>
#include <arrow/result.h>

#include "cache/fill.h"
#include "format/stored_stream.h"

namespace quiver {

class PayloadSource {
 public:
  virtual ~PayloadSource() = default;
  /// \brief The schema message (waits for it if the source is a running fill).
  virtual arrow::Result<arrow::ipc::IpcPayload> Schema() = 0;
  /// \brief The next dictionary or record batch message, or std::nullopt at the end.
  virtual arrow::Result<std::optional<arrow::ipc::IpcPayload>> Next() = 0;
};

/// \brief The stored streams of `parts` (an entry, or an object's base and patches) as one
/// stream: the first part's schema, then every part's messages in order.
std::unique_ptr<PayloadSource> StoredPayloads(std::vector<std::unique_ptr<StoredStream>> parts);

/// \brief Reader `reader` of a running fill; detached from it when destroyed.
std::unique_ptr<PayloadSource> FillPayloads(std::shared_ptr<Fill> fill, int reader);

}  // namespace quiver
