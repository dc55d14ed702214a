#include "cache/fill_pump.h"

#include <arrow/io/file.h>
#include <arrow/ipc/writer.h>
#include <spdlog/spdlog.h>

namespace quiver {

namespace {

// Sends each encoded message to the store, while the result is still being cached, and to
// the fill's readers: from the store's local file while it has one (each message announced
// once it is complete there), else as a payload kept in memory.
class TeeSink final : public arrow::ipc::internal::IpcPayloadWriter {
 public:
  TeeSink(Fill* fill, std::shared_ptr<arrow::Schema> schema, EntryWriter* entry, bool* entry_failed)
      : fill_(fill), schema_(std::move(schema)), entry_(entry), entry_failed_(entry_failed) {}

  arrow::Status WritePayload(const arrow::ipc::IpcPayload& payload) override {
    const bool is_schema = payload.type == arrow::ipc::MessageType::SCHEMA;
    bool stored = false;
    if (entry_ && !*entry_failed_) {
      auto st = entry_->WritePayload(payload);
      // Readers of the file must find the whole message there before it is announced.
      if (st.ok() && (is_schema || !path_.empty())) st = entry_->Flush();
      if (st.ok()) {
        stored = true;
      } else {
        *entry_failed_ = true;
        fill_->StopCaching(st.IsCapacityError() ? kTooLargeToCache
                                                : "storing the result failed: " + st.message());
        if (!st.IsCapacityError()) spdlog::error("query {}: {}", fill_->key(), st.ToString());
      }
    }
    if (is_schema) {
      if (stored) ServeFromFile();
      fill_->SetSchema(schema_, payload);
    } else if (stored && !path_.empty() && entry_->local_path() == path_) {
      fill_->AppendedToFile(entry_->bytes_written());
    } else {
      // The file, if there was one, stopped growing (the entry failed, or the disk tier
      // dropped its copy): the readers get the rest from memory.
      path_.clear();
      fill_->Append(payload);
    }
    return arrow::Status::OK();
  }
  arrow::Status Close() override { return arrow::Status::OK(); }

 private:
  // Opened here, before anything can rename or remove it: the fill reads through this open
  // file whatever happens to the path.
  void ServeFromFile() {
    std::string path = entry_->local_path();
    if (path.empty()) return;
    auto file = arrow::io::ReadableFile::Open(path);
    if (!file.ok()) {
      spdlog::warn("query {}: readers cannot follow the result in {} ({}); keeping it in memory",
                   fill_->key(), path, file.status().ToString());
      return;
    }
    fill_->UseFile(std::move(*file), entry_->bytes_written());
    path_ = std::move(path);
  }

  Fill* fill_;
  std::shared_ptr<arrow::Schema> schema_;
  EntryWriter* entry_;
  bool* entry_failed_;
  std::string path_;  // the file the fill's readers read, while it grows
};

}  // namespace

PumpResult PumpStream(QueryStream* stream, Fill* fill, EntryWriter* entry,
                      const std::function<std::string(bool entry_failed)>& should_stop) {
  PumpResult result;
  auto schema = stream->schema();
  if (entry) entry->SetSchema(*schema);
  auto writer = arrow::ipc::internal::OpenRecordBatchWriter(
      std::make_unique<TeeSink>(fill, schema, entry, &result.entry_failed), schema);
  if (!writer.ok()) {
    result.status = writer.status();
    return result;
  }
  while (true) {
    std::string stop = should_stop(result.entry_failed);
    if (!stop.empty()) {
      stream->Cancel();
      result.status = arrow::Status::Cancelled(stop);
      return result;
    }
    auto batch = stream->Next();
    if (!batch.ok()) {
      result.status = batch.status();
      return result;
    }
    if (!*batch) break;
    result.status = (*writer)->WriteRecordBatch(**batch);
    if (!result.status.ok()) return result;
    if (entry && !result.entry_failed) entry->CountBatch((*batch)->num_rows());
  }
  result.status = (*writer)->Close();
  return result;
}

}  // namespace quiver
