// DataStream: the record batches of a DoGet (an object or a query result) as an
// arrow::RecordBatchReader, plus the JSON app_metadata the server sends with them (the
// ObjectRef of an object, the cache status of a query: docs/api.md, docs/queries.md).
//
// Open() reads the first message, so a missing key or a refused query fails there, before
// the caller creates any output. Rows and bytes (the IPC body size of each batch) are
// counted as batches are read; an optional progress callback sees them after each batch.
//
// Thread-safety: not safe for concurrent use.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include <arrow/flight/client.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <nlohmann/json.hpp>

namespace quiver {

/// Called after each batch with the rows and bytes transferred so far.
using ProgressFn = std::function<void(int64_t rows, int64_t bytes)>;

class DataStream : public arrow::RecordBatchReader {
 public:
  /// \brief Wrap a DoGet reader; reads its first message.
  static arrow::Result<std::shared_ptr<DataStream>> Open(
      std::unique_ptr<arrow::flight::FlightStreamReader> reader, ProgressFn progress = {});
  ~DataStream() override;

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }
  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* batch) override;
  /// \brief Stop reading: cancels the call if the stream is not finished.
  arrow::Status Close() override;

  /// The app_metadata objects received so far, merged (later fields win). The first
  /// batch's metadata is there as soon as Open() returns.
  const nlohmann::json& metadata() const { return metadata_; }
  int64_t rows() const { return rows_; }
  int64_t bytes() const { return bytes_; }
  bool finished() const { return finished_; }

 private:
  DataStream(std::unique_ptr<arrow::flight::FlightStreamReader> reader, ProgressFn progress);
  // Reads messages until a batch or the end; merges metadata-only messages.
  arrow::Status Fetch(std::shared_ptr<arrow::RecordBatch>* batch);

  std::unique_ptr<arrow::flight::FlightStreamReader> reader_;
  ProgressFn progress_;
  std::shared_ptr<arrow::Schema> schema_;
  std::shared_ptr<arrow::RecordBatch> pending_;  // the first batch, read by Open()
  nlohmann::json metadata_ = nlohmann::json::object();
  int64_t rows_ = 0;
  int64_t bytes_ = 0;
  bool finished_ = false;
};

}  // namespace quiver
