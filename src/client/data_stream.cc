#include "client/data_stream.h"

#include <arrow/ipc/writer.h>

namespace quiver {

DataStream::DataStream(std::unique_ptr<arrow::flight::FlightStreamReader> reader,
                       ProgressFn progress)
    : reader_(std::move(reader)), progress_(std::move(progress)) {}

DataStream::~DataStream() { (void)Close(); }

arrow::Result<std::shared_ptr<DataStream>> DataStream::Open(
    std::unique_ptr<arrow::flight::FlightStreamReader> reader, ProgressFn progress) {
  std::shared_ptr<DataStream> stream(new DataStream(std::move(reader), std::move(progress)));
  // The server's status (e.g. NOT_FOUND) arrives with the first message.
  ARROW_ASSIGN_OR_RAISE(stream->schema_, stream->reader_->GetSchema());
  ARROW_RETURN_NOT_OK(stream->Fetch(&stream->pending_));
  return stream;
}

arrow::Status DataStream::Fetch(std::shared_ptr<arrow::RecordBatch>* batch) {
  *batch = nullptr;
  while (!finished_) {
    ARROW_ASSIGN_OR_RAISE(auto chunk, reader_->Next());
    if (chunk.app_metadata && chunk.app_metadata->size() > 0) {
      auto j = nlohmann::json::parse(chunk.app_metadata->ToString(), nullptr,
                                     /*allow_exceptions=*/false);
      if (j.is_object()) metadata_.update(j);
    }
    if (!chunk.data && !chunk.app_metadata) {
      finished_ = true;
    } else if (chunk.data) {
      *batch = std::move(chunk.data);
      return arrow::Status::OK();
    }
  }
  return arrow::Status::OK();
}

arrow::Status DataStream::ReadNext(std::shared_ptr<arrow::RecordBatch>* batch) {
  if (pending_) {
    *batch = std::move(pending_);
    pending_ = nullptr;
  } else {
    ARROW_RETURN_NOT_OK(Fetch(batch));
  }
  if (*batch) {
    int64_t size = 0;
    ARROW_RETURN_NOT_OK(arrow::ipc::GetRecordBatchSize(**batch, &size));
    rows_ += (*batch)->num_rows();
    bytes_ += size;
    if (progress_) progress_(rows_, bytes_);
  }
  return arrow::Status::OK();
}

arrow::Status DataStream::Close() {
  if (reader_ && !finished_) {
    reader_->Cancel();
    finished_ = true;
  }
  return arrow::Status::OK();
}

}  // namespace quiver
