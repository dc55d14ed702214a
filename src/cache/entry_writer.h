// EntryWriter: writes one cache entry's Arrow IPC stream, message by message, into a new
// blob, then publishes it.
//
// The writer takes already-encoded IPC payloads (schema first, then dictionaries and
// record batches), so a caller that encoded a batch once can hand the same payload to
// the store and to live readers. Bytes are checksummed and counted on the way; exceeding
// the size limit fails the write with CapacityError. Destroying an uncommitted writer
// aborts it: nothing is left behind.
//
// Thread-safety: one thread at a time.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>
#include <chrono>

#include <arrow/ipc/writer.h>
#include <arrow/result.h>

#include "format/checksum.h"
#include "index/entry.h"
#include "storage/blob_store.h"

namespace quiver {

class ObjectCache;

/// Generations of the keys and tags an entry was computed from, taken when it started.
using GenerationSnapshot = std::vector<std::pair<std::string, uint64_t>>;

struct PutOptions {
  /// Compare-and-set: commit only if the key's latest version is this (0: create only).
  std::optional<uint64_t> if_version;
  /// Keys this entry was computed from; invalidating one of them invalidates it.
  std::vector<std::string> depends_on;
  /// Tags, e.g. "table:events"; invalidating a tag invalidates every entry carrying it.
  std::vector<std::string> tags;
  /// Set by the engine: commit only if none of these changed (an invalidation wins).
  GenerationSnapshot generations;
};

class EntryWriter {
 public:
  EntryWriter(ObjectCache* cache, std::string key, std::unique_ptr<BlobWriter> blob,
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

  int64_t bytes_written() const { return counted_.bytes_written(); }
  const std::string& key() const { return key_; }

  /// \brief End the stream, make it durable and publish it as the key's next version.
  /// `extras` supplies the query fields of the entry (source, query, expiry, cost).
  arrow::Result<EntryMeta> Commit(EntryMeta extras, PutOptions options);
  /// \brief Discard everything written. Idempotent.
  void Abort();

 private:
  arrow::Status Fail(arrow::Status st) {
    Abort();
    return st;
  }

  ObjectCache* cache_;
  std::string key_;
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
