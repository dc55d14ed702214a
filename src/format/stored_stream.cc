#include "format/stored_stream.h"

#include <arrow/buffer.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/dictionary.h>
#include <arrow/ipc/reader.h>
#include <arrow/type.h>

namespace quiver {

arrow::ipc::IpcPayload PayloadFromMessage(const arrow::ipc::Message& message) {
  arrow::ipc::IpcPayload payload;
  payload.type = message.type();
  payload.metadata = message.metadata();
  payload.body_length = message.body_length();
  if (message.body() && message.body_length() > 0) {
    // The stored body is already 8-byte padded as the IPC format requires, so it can be
    // sent as one buffer.
    payload.body_buffers.push_back(message.body());
  }
  return payload;
}

arrow::Result<std::unique_ptr<StoredStream>> StoredStream::Open(
    std::shared_ptr<arrow::io::RandomAccessFile> file) {
  std::unique_ptr<StoredStream> stream(new StoredStream());
  stream->file_ = file;
  ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
  ARROW_ASSIGN_OR_RAISE(auto input, arrow::io::RandomAccessFile::GetStream(file, 0, size));
  stream->reader_ = arrow::ipc::MessageReader::Open(std::move(input));
  ARROW_ASSIGN_OR_RAISE(auto message, stream->reader_->ReadNextMessage());
  if (!message) return arrow::Status::IOError("stored stream is empty");
  if (message->type() != arrow::ipc::MessageType::SCHEMA) {
    return arrow::Status::IOError("stored stream does not start with a schema message");
  }
  arrow::ipc::DictionaryMemo memo;
  ARROW_ASSIGN_OR_RAISE(stream->schema_, arrow::ipc::ReadSchema(*message, &memo));
  stream->schema_payload_ = PayloadFromMessage(*message);
  return stream;
}

arrow::Result<std::optional<arrow::ipc::IpcPayload>> StoredStream::Next() {
  ARROW_ASSIGN_OR_RAISE(auto message, reader_->ReadNextMessage());
  if (!message) return std::nullopt;
  if (message->type() == arrow::ipc::MessageType::SCHEMA) {
    return arrow::Status::IOError("stored stream holds a second schema message");
  }
  return PayloadFromMessage(*message);
}

}  // namespace quiver
