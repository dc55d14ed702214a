// The security side of `quiver serve` (docs/security.md): the Flight port's TLS, how this node
// reaches the other nodes over TLS, and the start-up log lines about authentication.
//
// Thread-safety: functions of their arguments (called once, at start).
#pragma once

#include <string>

#include <arrow/flight/client.h>
#include <arrow/flight/server.h>
#include <arrow/result.h>

#include "common/config.h"
#include "server/auth.h"
#include "server/tls_material.h"

namespace quiver {

/// \brief The Flight port's TLS files (`tls`), read and checked; null when TLS is off.
arrow::Result<std::shared_ptr<const TlsMaterial>> LoadFlightTls(const TlsConfig& tls);

/// \brief How this node connects to the other nodes for live joins: over TLS when it serves
/// TLS (`tls` not null), trusting its client CA (the CA of the cluster's certificates) and
/// presenting its own certificate, so that nodes requiring client certificates accept it.
arrow::flight::FlightClientOptions PeerClientOptions(const TlsMaterial* tls);

/// \brief The Flight port's certificate, and mutual TLS when a client CA is set (`tls` null:
/// no TLS).
void ApplyTls(const TlsMaterial* tls, arrow::flight::FlightServerOptions* options);

/// \brief Where the Flight port listens: the listen address, over TLS when a certificate is
/// set.
arrow::Result<arrow::flight::Location> ListenLocation(const ServerConfig& config);

/// \brief Log who may call (auth mode, tokens, JWT key) and the TLS in force.
void LogAuth(const ServerConfig& config, const Authenticator& auth);

}  // namespace quiver
