// RequestMiddleware: per-call bookkeeping for the Flight server -- a request id, metrics and
// the request log line.
//
// Every Flight call gets a request id: the client's `x-request-id` header if it is sane
// (metrics.h, IsSaneRequestId), else a new one. It is sent back as the response header
// `x-request-id`. When the call completes, its kind ("DoGet:object", "DoAction:stats", ...),
// outcome and gRPC code, duration and bytes sent go to Metrics::ObserveRequest and to the
// RequestLog. The method alone names the kind ("DoPut", "ListFlights"); the service refines
// it, and adds what only it knows (the key, a cache hit or miss), through CallRequest().
//
// Thread-safety: Flight calls a middleware's methods on the thread running the call's
// handler, and the handler's stream is drained on that thread too; one middleware belongs to
// one call. The factory is shared by all calls and is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include <arrow/flight/server.h>
#include <arrow/flight/server_middleware.h>

#include "server/metrics.h"
#include "server/request_log.h"

namespace quiver {

class RequestMiddleware final : public arrow::flight::ServerMiddleware {
 public:
  static constexpr const char* kName = "quiver-request";

  RequestMiddleware(Metrics* metrics, const RequestLog* log, std::string request_id,
                    std::string kind, std::string peer);

  std::string name() const override { return kName; }
  void SendingHeaders(arrow::flight::AddCallHeaders* outgoing_headers) override;
  void CallCompleted(const arrow::Status& status) override;

  const std::string& request_id() const { return request_id_; }
  /// \brief Name what the call asked for, e.g. "DoGet:query" (a small fixed set: it is a
  /// metric label).
  void set_kind(std::string kind) { kind_ = std::move(kind); }
  void set_key(std::string key) { key_ = std::move(key); }
  /// \brief How a successful call was served: hit, miss, join, bypass, not_modified (an
  /// error is always "error"; default "ok").
  void set_outcome(std::string outcome) { outcome_ = std::move(outcome); }
  void AddBytesOut(int64_t n) { bytes_out_ += n; }
  /// \brief Who the call is (for the request and audit logs), once authenticated.
  void set_identity(std::string name, std::string tenant) {
    identity_ = std::move(name);
    tenant_ = std::move(tenant);
  }

  /// \brief `stream`, counting the bytes of every payload it yields into this call.
  std::unique_ptr<arrow::flight::FlightDataStream> CountBytes(
      std::unique_ptr<arrow::flight::FlightDataStream> stream);

 private:
  Metrics* metrics_;
  const RequestLog* log_;
  const std::string request_id_;
  std::string kind_;
  std::string key_;
  std::string outcome_ = "ok";
  std::string identity_;
  std::string tenant_;
  const std::string peer_;
  std::atomic<int64_t> bytes_out_{0};
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

/// \brief The RequestMiddleware of a call, or null (a server without the factory: tests).
RequestMiddleware* CallRequest(const arrow::flight::ServerCallContext& context);

/// \brief The gRPC status name a Flight client sees for `status` ("OK", "NOT_FOUND",
/// "UNAVAILABLE", ...), as Arrow's gRPC transport maps it.
std::string GrpcCodeName(const arrow::Status& status);

class RequestMiddlewareFactory final : public arrow::flight::ServerMiddlewareFactory {
 public:
  /// Both must outlive the server.
  RequestMiddlewareFactory(Metrics* metrics, const RequestLog* log)
      : metrics_(metrics), log_(log) {}

  arrow::Status StartCall(const arrow::flight::CallInfo& info,
                          const arrow::flight::ServerCallContext& context,
                          std::shared_ptr<arrow::flight::ServerMiddleware>* middleware) override;

 private:
  Metrics* metrics_;
  const RequestLog* log_;
};

}  // namespace quiver
