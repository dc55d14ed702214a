#include "common/security_config.h"

#include <arpa/inet.h>

#include <nlohmann/json.hpp>

namespace quiver {

namespace {

arrow::Status UnknownField(const std::string& path, const char* section,
                           const std::string& field) {
  return arrow::Status::Invalid("config file '", path, "': ", section, ": unknown field '",
                                field, "'");
}

arrow::Status MustBeObject(const nlohmann::json& value, const std::string& path,
                           const char* section) {
  if (value.is_object()) return arrow::Status::OK();
  return arrow::Status::Invalid("config file '", path, "': '", section, "' must be an object");
}

}  // namespace

arrow::Status AuthConfig::Load(const nlohmann::json& value, const std::string& path) {
  ARROW_RETURN_NOT_OK(MustBeObject(value, path, "auth"));
  for (auto& [field, v] : value.items()) {
    if (field == "mode") mode = v.get<std::string>();
    else if (field == "tokens_file") tokens_file = v.get<std::string>();
    else if (field == "allow_unauthenticated") allow_unauthenticated = v.get<bool>();
    else if (field == "audit_log") audit_log = v.get<std::string>();
    else return UnknownField(path, "auth", field);
  }
  return arrow::Status::OK();
}

arrow::Status AuthConfig::Validate() const {
  if (mode != "none" && mode != "tokens") {
    return arrow::Status::Invalid("auth.mode must be \"none\" or \"tokens\", not \"", mode, "\"");
  }
  if (mode == "tokens" && tokens_file.empty()) {
    return arrow::Status::Invalid(
        "auth.mode \"tokens\" needs auth.tokens_file (--tokens-file); `quiver token add` "
        "makes one");
  }
  return arrow::Status::OK();
}

arrow::Status TlsConfig::Load(const nlohmann::json& value, const std::string& path) {
  ARROW_RETURN_NOT_OK(MustBeObject(value, path, "tls"));
  for (auto& [field, v] : value.items()) {
    if (field == "cert") cert = v.get<std::string>();
    else if (field == "key") key = v.get<std::string>();
    else if (field == "client_ca") client_ca = v.get<std::string>();
    else return UnknownField(path, "tls", field);
  }
  return arrow::Status::OK();
}

arrow::Status TlsConfig::Validate() const {
  if (cert.empty() != key.empty()) {
    return arrow::Status::Invalid("tls.cert and tls.key go together (--tls-cert, --tls-key)");
  }
  if (!client_ca.empty() && cert.empty()) {
    return arrow::Status::Invalid("tls.client_ca (--tls-client-ca) needs tls.cert and tls.key: "
                                  "client certificates are verified over TLS only");
  }
  return arrow::Status::OK();
}

bool IsLoopbackHost(const std::string& host) {
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6) != 0;
  }
  return false;
}

}  // namespace quiver
