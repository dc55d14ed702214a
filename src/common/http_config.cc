#include "common/http_config.h"

#include <nlohmann/json.hpp>

namespace quiver {

arrow::Result<HostPort> ParseHostPort(const std::string& text, const char* what) {
  std::string rest = text;
  for (const char* scheme : {"http://", "https://"}) {
    if (rest.rfind(scheme, 0) == 0) rest = rest.substr(std::string(scheme).size());
  }
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) {
    return arrow::Status::Invalid(what, " '", text, "' must be HOST:PORT, e.g. 127.0.0.1:8080");
  }
  HostPort out;
  out.host = rest.substr(0, colon);
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  const std::string port = rest.substr(colon + 1);
  char* end = nullptr;
  long value = std::strtol(port.c_str(), &end, 10);
  if (*end != '\0' || value < 0 || value > 65535) {
    return arrow::Status::Invalid(what, " '", text, "': port '", port,
                                  "' is not a number from 0 to 65535");
  }
  out.port = static_cast<int>(value);
  return out;
}

arrow::Status HttpConfig::Load(const nlohmann::json& value, const std::string& path) {
  if (!value.is_object()) {
    return arrow::Status::Invalid("config file '", path, "': 'http' must be an object");
  }
  for (auto& [field, v] : value.items()) {
    if (field == "listen") listen = v.get<std::string>();
    else if (field == "tls_cert") tls_cert = v.get<std::string>();
    else if (field == "tls_key") tls_key = v.get<std::string>();
    else if (field == "tls_client_ca") tls_client_ca = v.get<std::string>();
    else if (field == "threads") threads = v.get<int64_t>();
    else if (field == "read_timeout_s") read_timeout_s = v.get<double>();
    else if (field == "write_timeout_s") write_timeout_s = v.get<double>();
    else if (field == "keep_alive_s") keep_alive_s = v.get<double>();
    else {
      return arrow::Status::Invalid("config file '", path, "': http: unknown field '", field, "'");
    }
  }
  return arrow::Status::OK();
}

arrow::Status HttpConfig::Validate() const {
  if (!listen.empty()) ARROW_RETURN_NOT_OK(ParseHostPort(listen, "http.listen (--http)").status());
  if (tls_cert.empty() != tls_key.empty()) {
    return arrow::Status::Invalid("http.tls_cert and http.tls_key go together (HTTPS needs both)");
  }
  if (!tls_client_ca.empty() && tls_cert.empty()) {
    return arrow::Status::Invalid("http.tls_client_ca needs http.tls_cert and http.tls_key");
  }
  if (threads < 1 || threads > 4096) {
    return arrow::Status::Invalid("http.threads must be between 1 and 4096, got ", threads);
  }
  if (!(read_timeout_s > 0) || !(write_timeout_s > 0)) {
    return arrow::Status::Invalid("http.read_timeout_s and http.write_timeout_s must be > 0");
  }
  if (!(keep_alive_s >= 1)) return arrow::Status::Invalid("http.keep_alive_s must be >= 1");
  return arrow::Status::OK();
}

}  // namespace quiver
