#include "server/fill_stream.h"

#include <arrow/buffer.h>
#include <nlohmann/json.hpp>

#include "server/flight_errors.h"

namespace quiver {

std::shared_ptr<arrow::Schema> FillStream::schema() {
  auto schema = fill_->WaitSchema();
  return schema.ok() ? schema->first : nullptr;
}

arrow::Result<arrow::flight::FlightPayload> FillStream::GetSchemaPayload() {
  auto schema = fill_->WaitSchema();
  if (!schema.ok()) return ToFlightError(schema.status());
  arrow::flight::FlightPayload payload;
  payload.ipc_message = schema->second;
  return payload;
}

arrow::Result<arrow::flight::FlightPayload> FillStream::Next() {
  arrow::flight::FlightPayload payload;
  auto waited = fill_->WaitNext(reader_);
  if (!waited.ok()) return ToFlightError(waited.status());
  auto next = std::move(*waited);
  if (!next) return payload;  // end of stream
  payload.ipc_message = std::move(*next);
  if (payload.ipc_message.type != arrow::ipc::MessageType::RECORD_BATCH) return payload;
  if (!first_sent_) {
    first_sent_ = true;
    auto reason = fill_->not_cached_reason();
    if (!reason.empty()) {
      // Caching stopped before the first batch went out: say so right away.
      auto j = nlohmann::json::parse(first_metadata_);
      j["cached"] = false;
      j["reason"] = reason;
      first_metadata_ = j.dump();
      not_cached_sent_ = true;
    }
    payload.app_metadata = arrow::Buffer::FromString(first_metadata_);
  } else if (!not_cached_sent_) {
    auto reason = fill_->not_cached_reason();
    if (!reason.empty()) {
      not_cached_sent_ = true;
      nlohmann::json j = {{"cached", false}, {"reason", reason}};
      payload.app_metadata = arrow::Buffer::FromString(j.dump());
    }
  }
  return payload;
}

}  // namespace quiver
