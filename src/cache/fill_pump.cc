#include "cache/fill_pump.h"

#include <arrow/ipc/writer.h>
#include <spdlog/spdlog.h>

namespace quiver {

namespace {

// Sends each encoded message to the fill's readers and, while the result is still being
// cached, to the store.
class TeeSink final : public arrow::ipc::internal::IpcPayloadWriter {
 public:
  TeeSink(Fill* fill, std::shared_ptr<arrow::Schema> schema, EntryWriter* entry, bool* entry_failed)
      : fill_(fill), schema_(std::move(schema)), entry_(entry), entry_failed_(entry_failed) {}

  arrow::Status WritePayload(const arrow::ipc::IpcPayload& payload) override {
    if (payload.type == arrow::ipc::MessageType::SCHEMA) {
      fill_->SetSchema(schema_, payload);
    } else {
      fill_->Append(payload);
    }
    if (entry_ && !*entry_failed_) {
      auto st = entry_->WritePayload(payload);
      if (!st.ok()) {
        *entry_failed_ = true;
        fill_->StopCaching(st.IsCapacityError()
                               ? "result exceeds max_entry_bytes; streamed but not cached"
                               : "storing the result failed: " + st.message());
        if (!st.IsCapacityError()) spdlog::error("query {}: {}", fill_->key(), st.ToString());
      }
    }
    return arrow::Status::OK();
  }
  arrow::Status Close() override { return arrow::Status::OK(); }

 private:
  Fill* fill_;
  std::shared_ptr<arrow::Schema> schema_;
  EntryWriter* entry_;
  bool* entry_failed_;
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
