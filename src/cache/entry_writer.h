// EntryWriter: writes one cache entry's Arrow IPC stream, message by message, into a new data
// blob.
//
// The writer takes already-encoded IPC payloads (schema first, then dictionaries and record
// batches), so a caller that encoded a batch once can hand the same payload to the store and
// to live readers. Bytes are checksummed and counted on the way; exceeding the size limit
// fails the write with CapacityError. Finish() commits the data blob and returns the entry's
// metadata -- durable, but visible to nobody until the caller publishes it through the
// EntryStore. Destroying an unfinished writer aborts it: nothing is left behind.
//
// Thread-safety: one thread at a time.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <arrow/ipc/writer.h>
#include <arrow/result.h>

#include "format/checksum.h"
#include "index/entry.h"
#include "storage/blob_store.h"

namespace quiver {

class EntryWriter {
 public:
  /// \brief Write `key`'s entry into `blob`, failing once it exceeds `max_bytes` (the error
  /// names the limit as `limit_name`).
  EntryWriter(std::string key, std::string node, std::unique_ptr<BlobWriter> blob,
              int64_t max_bytes, std::string limit_name);
  ~EntryWriter();
  EntryWriter(const EntryWriter&) = delete;
  EntryWriter& operator=(const EntryWriter&) = delete;

  /// \brief Append one encoded message.
  arrow::Status WritePayload(const arrow::ipc::IpcPayload& payload);
  /// \brief Count a record batch of `rows` rows (for the manifest).
  void CountBatch(int64_t rows) {
    rows_ += rows;
    ++batches_;
  }
  /// \brief Record the schema's fingerprint (for the manifest).
  void SetSchema(const arrow::Schema& schema);

  /// \brief Write what the blob writer buffered to its local file (no fsync), so that a
  /// reader of local_path() finds every message written so far. A failure aborts the entry.
  arrow::Status Flush();
  /// \brief The local file holding the stream as written so far, up to the last Flush():
  /// its first bytes_written() bytes are the messages written. "" when there is none (the
  /// store keeps none, or stopped keeping one: the entry is finished, aborted, or its disk
  /// tier copy was dropped).
  std::string local_path() const { return done_ ? "" : blob_->local_path(); }

  int64_t bytes_written() const { return counted_.bytes_written(); }
  const std::string& key() const { return key_; }

  /// \brief End the stream and commit the data blob. The result has everything but the
  /// version and manifest name, which publication assigns; `cost_ms` defaults to the time
  /// since the writer was made (the time to receive a put).
  arrow::Result<EntryMeta> Finish();
  /// \brief Discard everything written. Idempotent.
  void Abort();

 private:
  arrow::Status Fail(arrow::Status st) {
    Abort();
    return st;
  }

  std::string key_;
  std::string node_;
  std::unique_ptr<BlobWriter> blob_;
  ChecksummingOutputStream counted_;
  std::unique_ptr<arrow::ipc::internal::IpcPayloadWriter> stream_;
  int64_t max_bytes_;
  std::string limit_name_;
  std::string schema_fingerprint_;
  int64_t rows_ = 0;
  int64_t batches_ = 0;
  bool done_ = false;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

/// An IpcPayloadWriter that forwards to an EntryWriter it does not own, so that Arrow's
/// RecordBatchWriter (which owns its sink) can encode into an EntryWriter.
class EntryPayloadSink final : public arrow::ipc::internal::IpcPayloadWriter {
 public:
  explicit EntryPayloadSink(EntryWriter* entry) : entry_(entry) {}
  arrow::Status WritePayload(const arrow::ipc::IpcPayload& payload) override {
    return entry_->WritePayload(payload);
  }
  arrow::Status Close() override { return arrow::Status::OK(); }

 private:
  EntryWriter* entry_;
};

}  // namespace quiver
