// The signals of `quiver serve`: SIGINT and SIGTERM stop the node; SIGHUP reloads the tokens
// file (or the JWT key) and the TLS files of the Flight port and of HTTPS (docs/security.md,
// "Rotating certificates"). One thread, the caller's, takes them with sigwait.
#pragma once

#include <signal.h>

#include <memory>

#include <arrow/status.h>

#include "common/config.h"

namespace quiver {

class Authenticator;
class Engine;
class FlightPeerClient;
class FlightPort;
class HttpServer;

/// The servers a SIGHUP reloads.
struct Reloadable {
  Authenticator* auth = nullptr;
  FlightPort* flight = nullptr;
  HttpServer* http = nullptr;               ///< may be null
  std::shared_ptr<FlightPeerClient> peers;  ///< shared mode only
};

/// \brief Block SIGINT, SIGTERM and SIGHUP in the calling thread, so that every thread
/// started after it inherits the mask and only ServeUntilSignalled takes them. Returns the set.
sigset_t BlockServeSignals();

/// \brief Block until SIGINT or SIGTERM, reloading `servers` on each SIGHUP; then stop the
/// queries of `engine` and the Flight port (running calls get `config.shutdown_grace_s`).
/// A reload that fails keeps what was in force and is logged; the error returned is the one
/// reload that cannot be survived, a Flight port that could not be bound again (the node
/// has stopped serving, and must exit with an error).
arrow::Status ServeUntilSignalled(const Reloadable& servers, const ServerConfig& config,
                                  Engine* engine, const sigset_t& signals);

}  // namespace quiver
