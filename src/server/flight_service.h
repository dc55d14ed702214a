// QuiverFlightService: the Arrow Flight adapter over the cache engine.
//
// Parses requests, calls the engine's fronts, and maps engine statuses to Flight errors (an
// unavailable index is UNAVAILABLE, a refused node ticket UNAUTHENTICATED). It holds no cache
// logic. The wire API is documented in docs/api.md; node tickets (other nodes joining a
// fill) in node_ticket.h.
//
// Thread-safety: Flight calls the handlers concurrently; all state lives in the engine.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <arrow/flight/server.h>

#include "cache/engine.h"
#include "server/auth.h"
#include "server/flame_adapter.h"
#include "server/flight_middleware.h"
#include "server/node_ticket.h"
#include "server/tenant_scope.h"

namespace quiver {

class QuiverFlightService final : public arrow::flight::FlightServerBase {
 public:
  /// \brief A service that answers UNAVAILABLE ("starting") until Start() is called, so that
  /// it can listen (and learn its port) before the engine is open.
  QuiverFlightService() = default;

  /// \brief Serve `engine`. Node tickets are verified with its index's cluster secret.
  /// REQUIRES: set_endpoint() was called.
  void Start(Engine* engine);

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
  /// Runs a handler's body once the service has started (UNAVAILABLE before), and maps its
  /// status to a Flight error: once per call, for every error the body returns.
  template <typename Body>
  arrow::Status Serve(Body&& body) const;

  /// The stored key a PATH descriptor names for a caller in `scope`.
  arrow::Result<ObjectKey> KeyFromDescriptor(const arrow::flight::FlightDescriptor& d,
                                             const TenantScope& scope) const;
  /// FlightInfo, ticket and ObjectRef as a caller in `scope` sees them.
  arrow::Result<arrow::flight::FlightInfo> MakeInfo(const OpenEntry& entry,
                                                    const TenantScope& scope) const;
  arrow::Result<std::vector<arrow::flight::FlightInfo>> ListInfos(const std::string& prefix,
                                                                  const TenantScope& scope);
  /// The latest version of object `key`; NOT_FOUND if there is none. `call` names the call
  /// in errors.
  arrow::Result<OpenEntry> PeekObject(const ObjectKey& key, const char* call);
  std::string ObjectRefJson(const EntryMeta& meta, const TenantScope& scope,
                            const char* status = nullptr) const;
  /// `who` must be granted the query's source; `call` (may be null) learns the query's key
  /// and how it was served.
  arrow::Result<std::unique_ptr<arrow::flight::FlightInfo>> QueryInfo(
      const arrow::flight::FlightDescriptor& request, const Identity& who,
      RequestMiddleware* call);
  arrow::Result<std::unique_ptr<arrow::flight::FlightDataStream>> QueryStream(
      const std::string& ticket, const Identity& who, RequestMiddleware* call);
  arrow::Result<std::unique_ptr<arrow::flight::FlightDataStream>> NodeStream(
      const arrow::flight::ServerCallContext& context, const std::string& ticket);
  /// A node ticket verified with the cluster secret (read again if it does not verify).
  arrow::Result<NodeJoin> VerifyJoin(const std::string& ticket);
  arrow::Result<std::unique_ptr<arrow::flight::FlightDataStream>> ObjectStream(
      const arrow::flight::ServerCallContext& context, const std::string& ticket,
      const TenantScope& scope);
  arrow::Status Put(const arrow::flight::ServerCallContext& context,
                    arrow::flight::FlightMessageReader* reader,
                    arrow::flight::FlightMetadataWriter* writer, const Identity& who,
                    const TenantScope& scope);

  std::unique_ptr<FlameAdapter> flame_;  // Flame's protocol (docs/compat/flame.md)
  std::atomic<bool> started_{false};
  Engine* engine_ = nullptr;
  ObjectCache* cache_ = nullptr;
  QueryCache* queries_ = nullptr;
  arrow::flight::Location endpoint_;
  std::string endpoint_text_;
};

}  // namespace quiver
