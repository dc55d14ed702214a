// FlightPort: the Flight listener of `quiver serve` -- the service, its TLS and middlewares --
// re-opened on the same address when a SIGHUP brings new TLS files.
//
// Arrow Flight's gRPC listener reads its certificate once, at Init, and does not share its
// port (Arrow turns SO_REUSEPORT off), so a reload with changed files stops the old listener,
// opens a new one on the same host and port with the new files, and lets the calls running on
// the old one finish within the shutdown grace period. A client that connects in the few
// milliseconds between the two is refused and reconnects (docs/security.md, "Rotating
// certificates"). Files that do not load leave the listener in force untouched.
//
// Thread-safety: Listen, then set_endpoint and Start, from one thread; ReloadTls and Shutdown
// from one thread (the signal thread of `quiver serve`).
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <arrow/flight/server.h>
#include <arrow/result.h>

#include "cache/engine.h"
#include "common/config.h"
#include "server/auth.h"
#include "server/flight_service.h"
#include "server/metrics.h"
#include "server/request_log.h"
#include "server/tls_material.h"

namespace quiver {

class FlightPort {
 public:
  /// \brief Listen on `config.listen` (over TLS with `config.tls`); the service answers
  /// UNAVAILABLE until Start. `metrics`, `request_log` and `auth` must outlive the port.
  static arrow::Result<std::unique_ptr<FlightPort>> Listen(const ServerConfig& config,
                                                           Metrics* metrics,
                                                           RequestLog* request_log,
                                                           const Authenticator* auth);
  ~FlightPort();

  int port() const { return port_; }
  /// \brief False once a reload could not bind the port again.
  bool serving() const { return service_ != nullptr; }
  /// \brief The TLS files in force (null without TLS).
  std::shared_ptr<const TlsMaterial> tls() const { return tls_; }

  /// \brief The location clients should use, then serve `engine` (which must outlive the port).
  void Start(const arrow::flight::Location& endpoint, Engine* engine);

  /// \brief Read the TLS files again; if they changed, re-open the port with them. An error
  /// leaves the port as it was, unless the port could not be bound again (then the node can
  /// no longer serve Flight, and the error says so).
  arrow::Result<TlsReload> ReloadTls(double grace_s);

  /// \brief Stop accepting; running calls get `grace_s` seconds. Returns when every listener,
  /// including those left by reloads, has stopped.
  void Shutdown(double grace_s);

 private:
  FlightPort(const ServerConfig& config, Metrics* metrics, RequestLog* request_log,
             const Authenticator* auth)
      : config_(config), metrics_(metrics), request_log_(request_log), auth_(auth) {}

  /// A service listening on `location` with `tls` (null: plain).
  arrow::Result<std::unique_ptr<QuiverFlightService>> Open(
      const arrow::flight::Location& location, const TlsMaterial* tls) const;
  /// Stop `service` in the background; Shutdown waits for it.
  void Drain(std::unique_ptr<QuiverFlightService> service, double grace_s);

  ServerConfig config_;
  Metrics* metrics_;
  RequestLog* request_log_;
  const Authenticator* auth_;
  std::shared_ptr<const TlsMaterial> tls_;
  std::unique_ptr<QuiverFlightService> service_;
  int port_ = 0;
  arrow::flight::Location endpoint_;
  Engine* engine_ = nullptr;
  std::vector<std::thread> draining_;
};

}  // namespace quiver
