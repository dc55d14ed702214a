// The `http` section of the server config: Quiver's optional HTTP interface (docs/http.md).
// Off unless `listen` is set (config, or `quiver serve --http HOST:PORT`).
#pragma once

#include <cstdint>
#include <string>

#include <arrow/result.h>
#include <nlohmann/json_fwd.hpp>

namespace quiver {

struct HttpConfig {
  /// HOST:PORT to serve HTTP on (port 0: a free one); empty: no HTTP. Default: empty.
  std::string listen;
  /// PEM certificate chain and private key: serve HTTPS. Both or neither. Default: none.
  std::string tls_cert;
  std::string tls_key;
  /// PEM CA bundle: require client certificates signed by it (mutual TLS). Default: none.
  /// Without http.tls_cert, all three default to the Flight port's tls settings.
  std::string tls_client_ca;
  /// Connections served at once (worker threads). Default: 32.
  int64_t threads = 32;
  /// Seconds a request may take to arrive, and a client to take each write of a response.
  /// Default: 30.
  double read_timeout_s = 30;
  double write_timeout_s = 30;
  /// Seconds an idle connection is kept open for its next request. Default: 5.
  double keep_alive_s = 5;

  bool enabled() const { return !listen.empty(); }
  /// \brief Overlay the fields of the config file's `http` object.
  arrow::Status Load(const nlohmann::json& value, const std::string& path);
  /// \brief Check the fields; the error names the field.
  arrow::Status Validate() const;
};

struct HostPort {
  std::string host;
  int port = 0;
};

/// \brief Parse "HOST:PORT" or "[V6]:PORT" (an http:// or https:// prefix is allowed).
arrow::Result<HostPort> ParseHostPort(const std::string& text, const char* what);

}  // namespace quiver
