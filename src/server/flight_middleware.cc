#include "server/flight_middleware.h"

#include <arrow/flight/transport.h>

#include "server/audit_log.h"

namespace quiver {

namespace flight = arrow::flight;

namespace {

constexpr const char* kRequestIdHeader = "x-request-id";

// The kind a call has before the service names it more precisely.
std::string MethodKind(flight::FlightMethod method) {
  switch (method) {
    case flight::FlightMethod::Handshake:
      return "Handshake";
    case flight::FlightMethod::ListFlights:
      return "ListFlights";
    case flight::FlightMethod::GetFlightInfo:
      return "GetFlightInfo";
    case flight::FlightMethod::GetSchema:
      return "GetSchema";
    case flight::FlightMethod::DoGet:
      return "DoGet";
    case flight::FlightMethod::DoPut:
      return "DoPut";
    case flight::FlightMethod::DoAction:
      return "DoAction";
    case flight::FlightMethod::ListActions:
      return "ListActions";
    case flight::FlightMethod::DoExchange:
      return "DoExchange";
    case flight::FlightMethod::PollFlightInfo:
      return "PollFlightInfo";
    default:
      return "unknown";
  }
}

// Counts the bytes of the payloads a DoGet sends. The stream is drained on the call's
// thread before CallCompleted, so the count is complete when the call is observed.
class CountingStream final : public flight::FlightDataStream {
 public:
  CountingStream(std::unique_ptr<flight::FlightDataStream> inner, RequestMiddleware* request)
      : inner_(std::move(inner)), request_(request) {}

  std::shared_ptr<arrow::Schema> schema() override { return inner_->schema(); }
  arrow::Result<flight::FlightPayload> GetSchemaPayload() override {
    return Count(inner_->GetSchemaPayload());
  }
  arrow::Result<flight::FlightPayload> Next() override { return Count(inner_->Next()); }
  arrow::Status Close() override { return inner_->Close(); }

 private:
  arrow::Result<flight::FlightPayload> Count(arrow::Result<flight::FlightPayload> payload) {
    if (payload.ok()) {
      const auto& p = *payload;
      int64_t n = p.ipc_message.body_length;
      if (p.ipc_message.metadata) n += p.ipc_message.metadata->size();
      if (p.app_metadata) n += p.app_metadata->size();
      request_->AddBytesOut(n);
    }
    return payload;
  }

  std::unique_ptr<flight::FlightDataStream> inner_;
  RequestMiddleware* request_;
};

}  // namespace

std::string GrpcCodeName(const arrow::Status& status) {
  if (status.ok()) return "OK";
  // Arrow's own mapping (a FlightStatusDetail's code first, else the Arrow status code), so
  // the label is what the client saw.
  switch (flight::internal::TransportStatus::FromStatus(status).code) {
    case flight::TransportStatusCode::kOk:
      return "OK";
    case flight::TransportStatusCode::kInternal:
      return "INTERNAL";
    case flight::TransportStatusCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case flight::TransportStatusCode::kTimedOut:
      return "DEADLINE_EXCEEDED";
    case flight::TransportStatusCode::kNotFound:
      return "NOT_FOUND";
    case flight::TransportStatusCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case flight::TransportStatusCode::kCancelled:
      return "CANCELLED";
    case flight::TransportStatusCode::kUnauthenticated:
      return "UNAUTHENTICATED";
    case flight::TransportStatusCode::kUnauthorized:
      return "PERMISSION_DENIED";
    case flight::TransportStatusCode::kUnimplemented:
      return "UNIMPLEMENTED";
    case flight::TransportStatusCode::kUnavailable:
      return "UNAVAILABLE";
    default:
      return "UNKNOWN";
  }
}

RequestMiddleware::RequestMiddleware(Metrics* metrics, const RequestLog* log,
                                     std::string request_id, std::string kind, std::string peer)
    : metrics_(metrics),
      log_(log),
      request_id_(std::move(request_id)),
      kind_(std::move(kind)),
      peer_(std::move(peer)) {}

void RequestMiddleware::SendingHeaders(flight::AddCallHeaders* outgoing_headers) {
  outgoing_headers->AddHeader(kRequestIdHeader, request_id_);
}

void RequestMiddleware::CallCompleted(const arrow::Status& status) {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const std::string code = GrpcCodeName(status);
  const std::string outcome = status.ok() ? outcome_ : "error";
  const int64_t bytes = bytes_out_.load();
  if (metrics_) metrics_->ObserveRequest("flight", kind_, outcome, code, seconds, bytes);
  if (log_) {
    RequestRecord record;
    record.request_id = request_id_;
    record.interface = "flight";
    record.kind = kind_;
    record.key = key_;
    record.code = code;
    record.outcome = outcome;
    if (!status.ok()) record.message = status.message();
    record.peer = peer_;
    record.identity = identity_;
    record.tenant = tenant_;
    record.audited = IsAuditedKind(kind_);
    record.duration_ms = seconds * 1000;
    record.bytes = bytes;
    log_->Write(record);
  }
}

std::unique_ptr<flight::FlightDataStream> RequestMiddleware::CountBytes(
    std::unique_ptr<flight::FlightDataStream> stream) {
  if (!stream) return stream;
  return std::make_unique<CountingStream>(std::move(stream), this);
}

RequestMiddleware* CallRequest(const flight::ServerCallContext& context) {
  return static_cast<RequestMiddleware*>(context.GetMiddleware(RequestMiddleware::kName));
}

arrow::Status RequestMiddlewareFactory::StartCall(
    const flight::CallInfo& info, const flight::ServerCallContext& context,
    std::shared_ptr<flight::ServerMiddleware>* middleware) {
  std::string id;
  const auto& headers = context.incoming_headers();
  auto it = headers.find(kRequestIdHeader);
  if (it != headers.end() && IsSaneRequestId(it->second)) {
    id = std::string(it->second);
  } else {
    id = NewRequestId();
  }
  *middleware = std::make_shared<RequestMiddleware>(metrics_, log_, std::move(id),
                                                    MethodKind(info.method), context.peer());
  return arrow::Status::OK();
}

}  // namespace quiver
