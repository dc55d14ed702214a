// Pass-through reader of a stored Arrow IPC stream.
//
// The hit path serves stored bytes as they are: each IPC message of the file becomes an
// ipc::IpcPayload whose metadata and body are zero-copy slices of the (memory-mapped)
// file. Only the schema message is decoded, because callers need the schema object;
// record batches and dictionaries are never decoded or re-encoded here.
//
// Thread-safety: a StoredStream is not safe for concurrent use; open one per reader.
#pragma once

#include <memory>
#include <optional>

#include <arrow/io/interfaces.h>
#include <arrow/ipc/message.h>
#include <arrow/ipc/writer.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

namespace quiver {

class StoredStream {
 public:
  /// \brief Open a stored IPC stream and read its schema message.
  /// The file must stay readable for the life of the StoredStream and its payloads.
  static arrow::Result<std::unique_ptr<StoredStream>> Open(
      std::shared_ptr<arrow::io::RandomAccessFile> file);

  const std::shared_ptr<arrow::Schema>& schema() const { return schema_; }
  /// The schema message, ready to send.
  const arrow::ipc::IpcPayload& schema_payload() const { return schema_payload_; }

  /// \brief Return the next message (dictionary or record batch) as a payload, or
  /// std::nullopt at the end of the stream.
  arrow::Result<std::optional<arrow::ipc::IpcPayload>> Next();

 private:
  StoredStream() = default;
  std::shared_ptr<arrow::io::RandomAccessFile> file_;
  std::unique_ptr<arrow::ipc::MessageReader> reader_;
  std::shared_ptr<arrow::Schema> schema_;
  arrow::ipc::IpcPayload schema_payload_;
};

/// \brief Convert one IPC message into a payload without copying its buffers.
arrow::ipc::IpcPayload PayloadFromMessage(const arrow::ipc::Message& message);

}  // namespace quiver
