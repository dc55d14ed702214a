// EntryStream: a FlightDataStream that sends stored IPC streams as they are.
//
// Each stored message becomes one FlightData payload (zero-copy slices of the mapped
// file). The first record batch carries app_metadata (the ObjectRef and status as JSON),
// so a client learns which version it received. A patched object is several stored streams
// of one schema (its parts, object_cache.h): they are sent as one stream, the first part's
// schema message followed by every part's dictionaries and batches in order (a later part's
// dictionary replaces the earlier one of the same field, as the IPC stream format allows).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <arrow/flight/server.h>

#include "cache/object_cache.h"
#include "format/stored_stream.h"

namespace quiver {

class EntryStream final : public arrow::flight::FlightDataStream {
 public:
  EntryStream(std::unique_ptr<StoredStream> stored, std::string app_metadata)
      : app_metadata_(std::move(app_metadata)) {
    parts_.push_back(std::move(stored));
  }
  /// \brief Send `parts` (at least one) as one stream. With `schema`, it is sent instead of
  /// the stored schema (same fields, other metadata).
  EntryStream(std::vector<std::unique_ptr<StoredStream>> parts, std::string app_metadata,
              std::shared_ptr<arrow::Schema> schema = nullptr);

  std::shared_ptr<arrow::Schema> schema() override {
    return schema_ ? schema_ : parts_.front()->schema();
  }
  arrow::Result<arrow::flight::FlightPayload> GetSchemaPayload() override;
  arrow::Result<arrow::flight::FlightPayload> Next() override;

 private:
  std::vector<std::unique_ptr<StoredStream>> parts_;
  size_t current_ = 0;
  std::string app_metadata_;
  std::shared_ptr<arrow::Schema> schema_;  // null: the stored one
  bool metadata_sent_ = false;
};

/// \brief Open the stored stream of each part of `read`, oldest first.
arrow::Result<std::vector<std::unique_ptr<StoredStream>>> OpenParts(const ObjectRead& read);

/// \brief A stream of the stored schema and one empty batch carrying `app_metadata`:
/// the "not modified" answer to a conditional get.
arrow::Result<std::unique_ptr<arrow::flight::FlightDataStream>> MakeNotModifiedStream(
    const StoredStream& stored, std::string app_metadata);

}  // namespace quiver
