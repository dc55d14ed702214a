#include "cli/serve_security.h"

#include <arrow/util/uri.h>
#include <spdlog/spdlog.h>

namespace quiver {

arrow::Result<std::shared_ptr<const TlsMaterial>> LoadFlightTls(const TlsConfig& tls) {
  if (!tls.enabled()) return nullptr;
  TlsFiles files;  // the field names default to the tls section's
  files.cert = tls.cert;
  files.key = tls.key;
  files.client_ca = tls.client_ca;
  return TlsMaterial::Load(files);
}

arrow::flight::FlightClientOptions PeerClientOptions(const TlsMaterial* tls) {
  auto options = arrow::flight::FlightClientOptions::Defaults();
  if (tls == nullptr) return options;
  options.tls_root_certs = tls->ca_pem();
  options.cert_chain = tls->cert_pem();
  options.private_key = tls->key_pem();
  return options;
}

void ApplyTls(const TlsMaterial* tls, arrow::flight::FlightServerOptions* options) {
  if (tls == nullptr) return;
  arrow::flight::CertKeyPair pair;
  pair.pem_cert = tls->cert_pem();
  pair.pem_key = tls->key_pem();
  options->tls_certificates.push_back(std::move(pair));
  if (!tls->ca_pem().empty()) {
    options->root_certificates = tls->ca_pem();
    options->verify_client = true;
  }
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
