#include "server/payload_source.h"

namespace quiver {

namespace {

class StoredParts final : public PayloadSource {
 public:
  explicit StoredParts(std::vector<std::unique_ptr<StoredStream>> parts)
      : parts_(std::move(parts)) {}

  arrow::Result<arrow::ipc::IpcPayload> Schema() override {
    return parts_.front()->schema_payload();
  }

  arrow::Result<std::optional<arrow::ipc::IpcPayload>> Next() override {
    while (current_ < parts_.size()) {
      ARROW_ASSIGN_OR_RAISE(auto message, parts_[current_]->Next());
      if (message) return message;
      ++current_;
    }
    return std::nullopt;
  }

 private:
  std::vector<std::unique_ptr<StoredStream>> parts_;
  size_t current_ = 0;
};

class FillReader final : public PayloadSource {
 public:
  FillReader(std::shared_ptr<Fill> fill, int reader) : fill_(std::move(fill)), reader_(reader) {}
  ~FillReader() override { fill_->Detach(reader_); }

  arrow::Result<arrow::ipc::IpcPayload> Schema() override {
    ARROW_ASSIGN_OR_RAISE(auto schema, fill_->WaitSchema());
    return schema.second;
  }

  arrow::Result<std::optional<arrow::ipc::IpcPayload>> Next() override {
    return fill_->WaitNext(reader_);
  }

 private:
  std::shared_ptr<Fill> fill_;
  int reader_;
};

}  // namespace

std::unique_ptr<PayloadSource> StoredPayloads(std::vector<std::unique_ptr<StoredStream>> parts) {
  return std::make_unique<StoredParts>(std::move(parts));
}

std::unique_ptr<PayloadSource> FillPayloads(std::shared_ptr<Fill> fill, int reader) {
  return std::make_unique<FillReader>(std::move(fill), reader);
}

}  // namespace quiver
