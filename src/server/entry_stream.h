// EntryStream: a FlightDataStream that sends a stored IPC stream as it is.
//
// Each stored message becomes one FlightData payload (zero-copy slices of the mapped
// file). The first record batch carries app_metadata (the ObjectRef and status as JSON),
// so a client learns which version it received.
#pragma once

#include <memory>
#include <string>

#include <arrow/flight/server.h>

#include "format/stored_stream.h"

namespace quiver {

class EntryStream final : public arrow::flight::FlightDataStream {
 public:
  EntryStream(std::unique_ptr<StoredStream> stored, std::string app_metadata)
      : stored_(std::move(stored)), app_metadata_(std::move(app_metadata)) {}

  std::shared_ptr<arrow::Schema> schema() override { return stored_->schema(); }
  arrow::Result<arrow::flight::FlightPayload> GetSchemaPayload() override;
  arrow::Result<arrow::flight::FlightPayload> Next() override;

 private:
  std::unique_ptr<StoredStream> stored_;
  std::string app_metadata_;
  bool metadata_sent_ = false;
};

/// \brief A stream of the stored schema and one empty batch carrying `app_metadata`:
/// the "not modified" answer to a conditional get.
arrow::Result<std::unique_ptr<arrow::flight::FlightDataStream>> MakeNotModifiedStream(
    const StoredStream& stored, std::string app_metadata);

}  // namespace quiver
