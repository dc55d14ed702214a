#include "cli/server_option.h"

#include <cstdlib>

namespace quiver {

std::string ServerLocation(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("QUIVER_SERVER");
  return env && *env ? env : "grpc://127.0.0.1:8815";
}

namespace {

std::string FlagOrEnv(const std::string& flag, const char* name) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv(name);
  return env ? env : "";
}

}  // namespace

void AddCredentialOptions(CLI::App* cmd, Credentials* credentials) {
  cmd->add_option("--token", credentials->token,
                  "Bearer token for a server with auth [default: $QUIVER_TOKEN]");
  cmd->add_option("--tls-ca", credentials->tls_ca,
                  "grpc+tls://: PEM file of the CA that signs the server's certificate "
                  "[default: $QUIVER_TLS_CA, else the system's CAs]");
}

ClientOptions WithCredentials(const Credentials& credentials, ClientOptions options) {
  options.token = FlagOrEnv(credentials.token, "QUIVER_TOKEN");
  options.tls_ca_file = FlagOrEnv(credentials.tls_ca, "QUIVER_TLS_CA");
  return options;
}

}  // namespace quiver
