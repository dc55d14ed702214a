#include "cli/serve_signals.h"

#include <pthread.h>

#include <spdlog/spdlog.h>

#include "cache/engine.h"
#include "cli/flight_port.h"
#include "cli/serve_security.h"
#include "server/auth.h"
#include "server/flight_peer_client.h"
#include "server/http_server.h"

namespace quiver {

namespace {

void ReloadAuth(Authenticator* auth) {
  auto reloaded = auth->Reload();
  if (!reloaded.ok()) {
    spdlog::error("SIGHUP: {}; the tokens loaded before stay in force", reloaded.ToString());
  } else if (auth->config().mode == "tokens") {
    spdlog::info("SIGHUP: reloaded the tokens file '{}' ({} tokens)", auth->config().tokens_file,
                 auth->token_count());
  } else if (auth->config().mode == "jwt") {
    spdlog::info("SIGHUP: reloaded the JWT key '{}'", auth->config().jwt.key_file);
  }
}

// Certificates: a failure keeps the ones in force, except when the Flight port cannot be
// bound again (returned: the node must stop).
arrow::Status ReloadTls(const Reloadable& servers, const ServerConfig& config) {
  auto flight = servers.flight->ReloadTls(config.shutdown_grace_s);
  if (!flight.ok()) {
    if (!servers.flight->serving()) return flight.status();
    spdlog::error("SIGHUP: {}; the Flight port keeps its certificate", flight.status().message());
  } else if (*flight == TlsReload::kUnchanged) {
    spdlog::info("SIGHUP: the Flight certificate files are unchanged");
  } else if (*flight == TlsReload::kReloaded) {
    spdlog::info("SIGHUP: the Flight port re-opened with the certificate '{}' (calls running "
                 "on the old one get {} s)",
                 config.tls.cert, config.shutdown_grace_s);
    if (servers.peers) {
      servers.peers->set_client_options(PeerClientOptions(servers.flight->tls().get()));
    }
  }
  if (servers.http == nullptr) return arrow::Status::OK();
  auto http = servers.http->ReloadTls();
  if (!http.ok()) {
    spdlog::error("SIGHUP: {}; HTTPS keeps its certificate", http.status().message());
  } else if (*http == TlsReload::kUnchanged) {
    spdlog::info("SIGHUP: the HTTPS certificate files are unchanged");
  } else if (*http == TlsReload::kReloaded) {
    spdlog::info("SIGHUP: HTTPS serves the certificate '{}' from the next connection on",
                 config.http.tls_cert);
  }
  return arrow::Status::OK();
}

}  // namespace

sigset_t BlockServeSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

arrow::Status ServeUntilSignalled(const Reloadable& servers, const ServerConfig& config,
                                  Engine* engine, const sigset_t& signals) {
  int sig = 0;
  arrow::Status failed;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    ReloadAuth(servers.auth);
    failed = ReloadTls(servers, config);
    if (!failed.ok()) {
      spdlog::error("SIGHUP: {}; shutting down", failed.message());
      break;
    }
  }
  if (failed.ok()) {
    spdlog::info("received {}, shutting down (in-flight calls get {} s)",
                 sig == SIGINT ? "SIGINT" : "SIGTERM", config.shutdown_grace_s);
  }
  engine->queries()->Shutdown();  // readers of running queries must not hold it up
  servers.flight->Shutdown(config.shutdown_grace_s);
  return failed;
}

}  // namespace quiver
