// FillStream: a FlightDataStream that follows a Fill (a query executing now).
//
// It sends the payloads the filler encoded, as they arrive. The first record batch
// carries the response metadata; if the fill later stops caching (the result outgrew
// max_entry_bytes), the next record batch carries {"cached": false, "reason": ...}.
// Destroying the stream detaches the reader; the fill itself goes on for its other readers.
#pragma once

#include <memory>
#include <string>

#include <arrow/flight/server.h>

#include "cache/fill.h"

namespace quiver {

class FillStream final : public arrow::flight::FlightDataStream {
 public:
  FillStream(std::shared_ptr<Fill> fill, int reader, std::string first_metadata)
      : fill_(std::move(fill)), reader_(reader), first_metadata_(std::move(first_metadata)) {}
  ~FillStream() override { fill_->Detach(reader_); }

  std::shared_ptr<arrow::Schema> schema() override;
  arrow::Result<arrow::flight::FlightPayload> GetSchemaPayload() override;
  arrow::Result<arrow::flight::FlightPayload> Next() override;

 private:
  std::shared_ptr<Fill> fill_;
  int reader_;
  std::string first_metadata_;
  bool first_sent_ = false;
  bool not_cached_sent_ = false;
};

}  // namespace quiver
