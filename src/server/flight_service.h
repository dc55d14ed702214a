// QuiverFlightService: the Arrow Flight adapter over the cache engine.
//
// Parses requests, calls ObjectCache, and maps engine statuses to Flight errors. It holds
// no cache logic. The wire API is documented in docs/api.md.
//
// Thread-safety: Flight calls the handlers concurrently; all state lives in the engine.
#pragma once

#include <memory>
#include <string>

#include <arrow/flight/server.h>

#include "cache/object_cache.h"
#include "cache/query_cache.h"

namespace quiver {

class QuiverFlightService final : public arrow::flight::FlightServerBase {
 public:
  QuiverFlightService(ObjectCache* cache, QueryCache* queries)
      : cache_(cache), queries_(queries) {}

  /// \brief Set the location clients should use to reach this server (after Init).
  void set_endpoint(const arrow::flight::Location& location);

  arrow::Status ListFlights(const arrow::flight::ServerCallContext& context,
                            const arrow::flight::Criteria* criteria,
                            std::unique_ptr<arrow::flight::FlightListing>* listings) override;
  arrow::Status GetFlightInfo(const arrow::flight::ServerCallContext& context,
                              const arrow::flight::FlightDescriptor& request,
                              std::unique_ptr<arrow::flight::FlightInfo>* info) override;
  arrow::Status GetSchema(const arrow::flight::ServerCallContext& context,
                          const arrow::flight::FlightDescriptor& request,
                          std::unique_ptr<arrow::flight::SchemaResult>* schema) override;
  arrow::Status DoGet(const arrow::flight::ServerCallContext& context,
                      const arrow::flight::Ticket& request,
                      std::unique_ptr<arrow::flight::FlightDataStream>* stream) override;
  arrow::Status DoPut(const arrow::flight::ServerCallContext& context,
                      std::unique_ptr<arrow::flight::FlightMessageReader> reader,
                      std::unique_ptr<arrow::flight::FlightMetadataWriter> writer) override;
  arrow::Status ListActions(const arrow::flight::ServerCallContext& context,
                            std::vector<arrow::flight::ActionType>* actions) override;
  arrow::Status DoAction(const arrow::flight::ServerCallContext& context,
                         const arrow::flight::Action& action,
                         std::unique_ptr<arrow::flight::ResultStream>* result) override;

 private:
  arrow::Result<ObjectKey> KeyFromDescriptor(const arrow::flight::FlightDescriptor& d) const;
  arrow::Result<arrow::flight::FlightInfo> MakeInfo(const OpenEntry& entry) const;
  std::string ObjectRefJson(const EntryMeta& meta, const char* status = nullptr) const;
  arrow::Result<std::unique_ptr<arrow::flight::FlightInfo>> QueryInfo(
      const arrow::flight::FlightDescriptor& request);
  arrow::Result<std::unique_ptr<arrow::flight::FlightDataStream>> QueryStream(
      const std::string& ticket);

  ObjectCache* cache_;
  QueryCache* queries_;
  arrow::flight::Location endpoint_;
  std::string endpoint_text_;
};

}  // namespace quiver
