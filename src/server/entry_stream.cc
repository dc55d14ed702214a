#include "server/entry_stream.h"

#include <arrow/buffer.h>
#include <arrow/ipc/dictionary.h>
#include <arrow/ipc/writer.h>
#include <arrow/record_batch.h>

#include "server/flight_errors.h"

namespace quiver {

EntryStream::EntryStream(std::vector<std::unique_ptr<StoredStream>> parts,
                         std::string app_metadata, std::shared_ptr<arrow::Schema> schema)
    : parts_(std::move(parts)), app_metadata_(std::move(app_metadata)), schema_(std::move(schema)) {}

arrow::Result<arrow::flight::FlightPayload> EntryStream::GetSchemaPayload() {
  arrow::flight::FlightPayload payload;
  if (!schema_) {
    payload.ipc_message = parts_.front()->schema_payload();
    return payload;
  }
  arrow::ipc::DictionaryFieldMapper mapper(*schema_);
  ARROW_RETURN_NOT_OK(arrow::ipc::GetSchemaPayload(
      *schema_, arrow::ipc::IpcWriteOptions::Defaults(), mapper, &payload.ipc_message));
  return payload;
}

arrow::Result<arrow::flight::FlightPayload> EntryStream::Next() {
  arrow::flight::FlightPayload payload;
  while (current_ < parts_.size()) {
    auto read = parts_[current_]->Next();
    if (!read.ok()) return ToFlightError(read.status());
    auto message = std::move(*read);
    if (!message) {
      ++current_;
      continue;
    }
    payload.ipc_message = std::move(*message);
    if (!metadata_sent_ && payload.ipc_message.type == arrow::ipc::MessageType::RECORD_BATCH) {
      payload.app_metadata = arrow::Buffer::FromString(app_metadata_);
      metadata_sent_ = true;
    }
    return payload;
  }
  return payload;  // null metadata ends the stream
}

namespace {

// Collects the payloads an IPC writer produces, instead of writing bytes.
class PayloadCollector final : public arrow::ipc::internal::IpcPayloadWriter {
 public:
  explicit PayloadCollector(std::vector<arrow::ipc::IpcPayload>* out) : out_(out) {}
  arrow::Status WritePayload(const arrow::ipc::IpcPayload& payload) override {
    out_->push_back(payload);
    return arrow::Status::OK();
  }
  arrow::Status Close() override { return arrow::Status::OK(); }

 private:
  std::vector<arrow::ipc::IpcPayload>* out_;
};

// Replays precomputed payloads after the stored schema message.
class PayloadListStream final : public arrow::flight::FlightDataStream {
 public:
  PayloadListStream(std::shared_ptr<arrow::Schema> schema, arrow::ipc::IpcPayload schema_payload,
                    std::vector<arrow::flight::FlightPayload> payloads)
      : schema_(std::move(schema)),
        schema_payload_(std::move(schema_payload)),
        payloads_(std::move(payloads)) {}
  std::shared_ptr<arrow::Schema> schema() override { return schema_; }
  arrow::Result<arrow::flight::FlightPayload> GetSchemaPayload() override {
    arrow::flight::FlightPayload p;
    p.ipc_message = schema_payload_;
    return p;
  }
  arrow::Result<arrow::flight::FlightPayload> Next() override {
    if (next_ == payloads_.size()) return arrow::flight::FlightPayload{};
    return payloads_[next_++];
  }

 private:
  std::shared_ptr<arrow::Schema> schema_;
  arrow::ipc::IpcPayload schema_payload_;
  std::vector<arrow::flight::FlightPayload> payloads_;
  size_t next_ = 0;
};

}  // namespace

arrow::Result<std::vector<std::unique_ptr<StoredStream>>> OpenParts(const ObjectRead& read) {
  std::vector<std::unique_ptr<StoredStream>> parts;
  for (const auto& part : read.parts) {
    ARROW_ASSIGN_OR_RAISE(auto stored, StoredStream::Open(part.file));
    parts.push_back(std::move(stored));
  }
  return parts;
}

arrow::Result<std::unique_ptr<arrow::flight::FlightDataStream>> MakeNotModifiedStream(
    const StoredStream& stored, std::string app_metadata) {
  // An empty batch still needs its (empty) dictionaries; let the IPC writer produce them.
  std::vector<arrow::ipc::IpcPayload> ipc;
  ARROW_ASSIGN_OR_RAISE(auto empty, arrow::RecordBatch::MakeEmpty(stored.schema()));
  ARROW_ASSIGN_OR_RAISE(auto writer, arrow::ipc::internal::OpenRecordBatchWriter(
                                         std::make_unique<PayloadCollector>(&ipc),
                                         stored.schema()));
  ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(*empty));
  ARROW_RETURN_NOT_OK(writer->Close());
  std::vector<arrow::flight::FlightPayload> payloads;
  for (auto& p : ipc) {
    if (p.type == arrow::ipc::MessageType::SCHEMA) continue;  // sent from the stored copy
    arrow::flight::FlightPayload fp;
    fp.ipc_message = std::move(p);
    if (fp.ipc_message.type == arrow::ipc::MessageType::RECORD_BATCH) {
      fp.app_metadata = arrow::Buffer::FromString(app_metadata);
    }
    payloads.push_back(std::move(fp));
  }
  return std::make_unique<PayloadListStream>(stored.schema(), stored.schema_payload(),
                                             std::move(payloads));
}

}  // namespace quiver
