// The `auth` and `tls` sections of the server config (docs/security.md): who may call the
// node, and the certificate its Flight port serves.
#pragma once

#include <string>

#include <arrow/status.h>
#include <nlohmann/json_fwd.hpp>

namespace quiver {

struct AuthConfig {
  /// "none" (every caller may do everything) or "tokens" (bearer tokens from tokens_file).
  /// Default: none — refused on a non-loopback address unless allow_unauthenticated.
  std::string mode = "none";
  /// The tokens file (`quiver token add` writes it); re-read on SIGHUP. Required by "tokens".
  std::string tokens_file;
  /// Serve without authentication on an address other than loopback. Default: false.
  bool allow_unauthenticated = false;
  /// Append one JSON line per write, delete, invalidation and admin action here (the audit
  /// log); empty: none. Default: none.
  std::string audit_log;

  bool enabled() const { return mode != "none"; }
  /// \brief Overlay the fields of the config file's `auth` object.
  arrow::Status Load(const nlohmann::json& value, const std::string& path);
  /// \brief Check the fields; the error names the field.
  arrow::Status Validate() const;
};

struct TlsConfig {
  /// PEM certificate chain and private key of the Flight port (grpc+tls). Both or neither.
  std::string cert;
  std::string key;
  /// PEM CA bundle: require and verify a client certificate signed by it (mutual TLS).
  std::string client_ca;

  bool enabled() const { return !cert.empty(); }
  arrow::Status Load(const nlohmann::json& value, const std::string& path);
  arrow::Status Validate() const;
};

/// \brief True if `host` (a name or address, IPv6 with or without brackets) is loopback:
/// 127.0.0.0/8, ::1 or "localhost".
bool IsLoopbackHost(const std::string& host);

}  // namespace quiver
