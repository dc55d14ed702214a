#include "cli/flight_port.h"

#include <chrono>

#include <arrow/flight/server_auth.h>
#include <arrow/util/uri.h>
#include <spdlog/spdlog.h>

#include "cli/serve_security.h"
#include "server/flight_auth.h"
#include "server/flight_middleware.h"

namespace quiver {

namespace {

// How long a reload waits for the old listener to release the port.
constexpr auto kRebindWindow = std::chrono::seconds(5);
constexpr auto kRebindPause = std::chrono::milliseconds(5);

}  // namespace

arrow::Result<std::unique_ptr<FlightPort>> FlightPort::Listen(const ServerConfig& config,
                                                              Metrics* metrics,
                                                              RequestLog* request_log,
                                                              const Authenticator* auth) {
  std::unique_ptr<FlightPort> port(new FlightPort(config, metrics, request_log, auth));
  ARROW_ASSIGN_OR_RAISE(port->tls_, LoadFlightTls(config.tls));
  ARROW_ASSIGN_OR_RAISE(auto location, ListenLocation(config));
  auto opened = port->Open(location, port->tls_.get());
  if (!opened.ok()) {
    return arrow::Status::IOError("cannot listen on ", config.listen, ": ",
                                  opened.status().message());
  }
  port->service_ = std::move(*opened);
  port->port_ = port->service_->port();
  return port;
}

FlightPort::~FlightPort() {
  for (auto& t : draining_) {
    if (t.joinable()) t.join();
  }
}

arrow::Result<std::unique_ptr<QuiverFlightService>> FlightPort::Open(
    const arrow::flight::Location& location, const TlsMaterial* tls) const {
  arrow::flight::FlightServerOptions options(location);
  ApplyTls(tls, &options);
  // The request middleware first: a call the auth middleware refuses is still counted and
  // logged.
  options.middleware.emplace_back(
      RequestMiddleware::kName,
      std::make_shared<RequestMiddlewareFactory>(metrics_, request_log_));
  options.middleware.emplace_back(AuthMiddleware::kName,
                                  std::make_shared<AuthMiddlewareFactory>(auth_));
  // Handshake: basic credentials are checked by the middleware (flight_auth.h).
  options.auth_handler = std::make_shared<arrow::flight::NoOpAuthHandler>();
  auto service = std::make_unique<QuiverFlightService>();
  auto st = service->Init(options);
  if (!st.ok()) return arrow::Status::IOError(st.message());
  return service;
}

void FlightPort::Start(const arrow::flight::Location& endpoint, Engine* engine) {
  endpoint_ = endpoint;
  engine_ = engine;
  service_->set_endpoint(endpoint_);
  service_->Start(engine_);
}

void FlightPort::Drain(std::unique_ptr<QuiverFlightService> service, double grace_s) {
  draining_.emplace_back([service = std::move(service), grace_s]() {
    auto deadline = std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(grace_s * 1000));
    auto down = service->Shutdown(&deadline);
    if (!down.ok()) spdlog::error("flight listener shutdown: {}", down.ToString());
    auto done = service->Wait();
    if (!done.ok()) spdlog::error("flight listener: {}", done.ToString());
  });
}

arrow::Result<TlsReload> FlightPort::ReloadTls(double grace_s) {
  if (tls_ == nullptr || service_ == nullptr) return TlsReload::kNoTls;
  ARROW_ASSIGN_OR_RAISE(auto next, LoadFlightTls(config_.tls));
  if (next->SameAs(*tls_)) return TlsReload::kUnchanged;
  arrow::util::Uri uri;
  ARROW_RETURN_NOT_OK(uri.Parse(config_.listen));
  ARROW_ASSIGN_OR_RAISE(auto location, arrow::flight::Location::ForGrpcTls(uri.host(), port_));
  // The old listener must let go of the port first; its running calls go on meanwhile.
  Drain(std::move(service_), grace_s);
  const auto give_up = std::chrono::steady_clock::now() + kRebindWindow;
  while (true) {
    auto opened = Open(location, next.get());
    if (opened.ok()) {
      service_ = std::move(*opened);
      break;
    }
    if (std::chrono::steady_clock::now() > give_up) {
      return arrow::Status::IOError("cannot listen again on ", location.ToString(),
                                    " with the new certificate: ", opened.status().message(),
                                    "; this node no longer serves Flight");
    }
    std::this_thread::sleep_for(kRebindPause);
  }
  service_->set_endpoint(endpoint_);
  service_->Start(engine_);
  tls_ = std::move(next);
  return TlsReload::kReloaded;
}

void FlightPort::Shutdown(double grace_s) {
  if (service_ != nullptr) Drain(std::move(service_), grace_s);
  for (auto& t : draining_) t.join();
  draining_.clear();
}

}  // namespace quiver
