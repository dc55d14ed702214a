#include "cli/serve_security.h"

#include <fstream>
#include <sstream>

#include <arrow/util/uri.h>
#include <spdlog/spdlog.h>

namespace quiver {

arrow::Result<std::string> ReadPemFile(const std::string& path, const char* field) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in || text.str().find("-----BEGIN ") == std::string::npos) {
    return arrow::Status::Invalid(field, " '", path, "' is not a readable PEM file");
  }
  return text.str();
}

arrow::Result<arrow::flight::FlightClientOptions> PeerClientOptions(const TlsConfig& tls) {
  auto options = arrow::flight::FlightClientOptions::Defaults();
  if (!tls.enabled()) return options;
  if (!tls.client_ca.empty()) {
    ARROW_ASSIGN_OR_RAISE(options.tls_root_certs,
                          ReadPemFile(tls.client_ca, "tls.client_ca (--tls-client-ca)"));
  }
  ARROW_ASSIGN_OR_RAISE(options.cert_chain, ReadPemFile(tls.cert, "tls.cert (--tls-cert)"));
  ARROW_ASSIGN_OR_RAISE(options.private_key, ReadPemFile(tls.key, "tls.key (--tls-key)"));
  return options;
}

arrow::Status ApplyTls(const TlsConfig& tls, arrow::flight::FlightServerOptions* options) {
  if (!tls.enabled()) return arrow::Status::OK();
  arrow::flight::CertKeyPair pair;
  ARROW_ASSIGN_OR_RAISE(pair.pem_cert, ReadPemFile(tls.cert, "tls.cert (--tls-cert)"));
  ARROW_ASSIGN_OR_RAISE(pair.pem_key, ReadPemFile(tls.key, "tls.key (--tls-key)"));
  options->tls_certificates.push_back(std::move(pair));
  if (!tls.client_ca.empty()) {
    ARROW_ASSIGN_OR_RAISE(options->root_certificates,
                          ReadPemFile(tls.client_ca, "tls.client_ca (--tls-client-ca)"));
    options->verify_client = true;
  }
  return arrow::Status::OK();
}

arrow::Result<arrow::flight::Location> ListenLocation(const ServerConfig& config) {
  ARROW_ASSIGN_OR_RAISE(auto location, arrow::flight::Location::Parse(config.listen));
  if (!config.tls.enabled() || location.scheme() == "grpc+tls") return location;
  arrow::util::Uri uri;
  ARROW_RETURN_NOT_OK(uri.Parse(config.listen));
  return arrow::flight::Location::ForGrpcTls(uri.host(), uri.port());
}

void LogAuth(const ServerConfig& config, const Authenticator& auth) {
  if (config.auth.mode == "tokens") {
    spdlog::info("auth: tokens from '{}' ({} tokens; SIGHUP reloads them)",
                 config.auth.tokens_file, auth.token_count());
  } else if (config.auth.mode == "jwt") {
    const JwtConfig& jwt = config.auth.jwt;
    spdlog::info("auth: JWT {} with the key in '{}', issuer '{}', audience '{}' (SIGHUP "
                 "re-reads the key)",
                 jwt.algorithm, jwt.key_file, jwt.issuer, jwt.audience);
  } else if (config.auth.allow_unauthenticated) {
    spdlog::warn("auth: none, and allow_unauthenticated is set: anyone who reaches {}{} may "
                 "read, write and reconfigure this cache",
                 config.listen, config.http.enabled() ? " or " + config.http.listen : "");
  }
  if (config.tls.enabled()) {
    spdlog::info("tls: serving Flight over TLS with '{}'{}", config.tls.cert,
                 config.tls.client_ca.empty() ? ""
                                              : "; client certificates must be signed by '" +
                                                    config.tls.client_ca + "'");
  }
}

}  // namespace quiver
