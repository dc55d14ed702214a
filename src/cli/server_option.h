// The server a client command talks to: --server, else $QUIVER_SERVER, else
// grpc://127.0.0.1:8815 — the same for the admin and the data commands; and the token and
// TLS CA it uses (--token/$QUIVER_TOKEN, --tls-ca/$QUIVER_TLS_CA).
//
// Thread-safety: reads the environment.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "client/quiver_client.h"

namespace quiver {

inline constexpr const char* kServerOptionHelp =
    "Quiver server [default: $QUIVER_SERVER or grpc://127.0.0.1:8815]";

/// \brief `flag` if given, else $QUIVER_SERVER, else grpc://127.0.0.1:8815.
std::string ServerLocation(const std::string& flag);

/// How a client command proves who it is, and trusts the server (docs/security.md).
struct Credentials {
  std::string token;   ///< --token, else $QUIVER_TOKEN
  std::string tls_ca;  ///< --tls-ca, else $QUIVER_TLS_CA
};

/// \brief Add --token and --tls-ca to a client command.
void AddCredentialOptions(CLI::App* cmd, Credentials* credentials);
/// \brief Client options with the token and CA of `credentials` (or the environment's).
ClientOptions WithCredentials(const Credentials& credentials, ClientOptions options = {});

}  // namespace quiver
