#include "common/security_config.h"

#include <arpa/inet.h>

#include <nlohmann/json.hpp>

#include "common/config.h"

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

// {"cache_size": bytes or "1GiB", "max_entries": n} of tenant `name`.
arrow::Result<TenantBudget> LoadTenantBudget(const std::string& name, const nlohmann::json& value,
                                             const std::string& path) {
  const std::string where = "auth.tenant_budgets." + name;
  ARROW_RETURN_NOT_OK(MustBeObject(value, path, where.c_str()));
  TenantBudget budget;
  for (auto& [field, v] : value.items()) {
    if (field == "cache_size") {
      auto size = ByteSizeFromJson(v);
      if (!size.ok()) {
        return arrow::Status::Invalid("config file '", path, "': ", where, ".cache_size: ",
                                      size.status().message());
      }
      budget.cache_size = *size;
    } else if (field == "max_entries") {
      budget.max_entries = v.get<int64_t>();
    } else {
      return UnknownField(path, where.c_str(), field);
    }
  }
  return budget;
}

arrow::Status LoadTenantBudgets(const nlohmann::json& value, const std::string& path,
                                TenantBudgets* out) {
  ARROW_RETURN_NOT_OK(MustBeObject(value, path, "auth.tenant_budgets"));
  for (auto& [name, v] : value.items()) {
    ARROW_ASSIGN_OR_RAISE((*out)[name], LoadTenantBudget(name, v, path));
  }
  return arrow::Status::OK();
}

}  // namespace

const TenantBudget* FindTenantBudget(const TenantBudgets& budgets, const std::string& tenant) {
  auto found = budgets.find(tenant);
  if (found == budgets.end()) found = budgets.find("*");
  if (found == budgets.end() || !found->second.limited()) return nullptr;
  return &found->second;
}

arrow::Status AuthConfig::Load(const nlohmann::json& value, const std::string& path) {
  ARROW_RETURN_NOT_OK(MustBeObject(value, path, "auth"));
  for (auto& [field, v] : value.items()) {
    if (field == "mode") mode = v.get<std::string>();
    else if (field == "tokens_file") tokens_file = v.get<std::string>();
    else if (field == "allow_unauthenticated") allow_unauthenticated = v.get<bool>();
    else if (field == "audit_log") audit_log = v.get<std::string>();
    else if (field == "jwt") ARROW_RETURN_NOT_OK(jwt.Load(v, path));
    else if (field == "rate_limit_per_s") rate_limit_per_s = v.get<double>();
    else if (field == "rate_limit_burst") rate_limit_burst = v.get<double>();
    else if (field == "tenant_budgets")
      ARROW_RETURN_NOT_OK(LoadTenantBudgets(v, path, &tenant_budgets));
    else return UnknownField(path, "auth", field);
  }
  return arrow::Status::OK();
}

arrow::Status AuthConfig::Validate() const {
  if (mode != "none" && mode != "tokens" && mode != "jwt") {
    return arrow::Status::Invalid("auth.mode must be \"none\", \"tokens\" or \"jwt\", not \"",
                                  mode, "\"");
  }
  if (mode == "jwt") ARROW_RETURN_NOT_OK(jwt.Validate());
  if (!(rate_limit_per_s >= 0) || !(rate_limit_burst >= 0)) {
    return arrow::Status::Invalid("auth.rate_limit_per_s and auth.rate_limit_burst must be >= 0");
  }
  for (const auto& [name, budget] : tenant_budgets) {
    if (budget.cache_size < 0 || budget.max_entries < 0) {
      return arrow::Status::Invalid("auth.tenant_budgets.", name,
                                    ": cache_size and max_entries must be >= 0 (0: no limit)");
    }
  }
  if (mode == "tokens" && tokens_file.empty()) {
    return arrow::Status::Invalid(
        "auth.mode \"tokens\" needs auth.tokens_file (--tokens-file); `quiver token add` "
        "makes one");
  }
  return arrow::Status::OK();
}

arrow::Status JwtConfig::Load(const nlohmann::json& value, const std::string& path) {
  ARROW_RETURN_NOT_OK(MustBeObject(value, path, "auth.jwt"));
  for (auto& [field, v] : value.items()) {
    if (field == "algorithm") algorithm = v.get<std::string>();
    else if (field == "key_file") key_file = v.get<std::string>();
    else if (field == "issuer") issuer = v.get<std::string>();
    else if (field == "audience") audience = v.get<std::string>();
    else if (field == "name_claim") name_claim = v.get<std::string>();
    else if (field == "tenant_claim") tenant_claim = v.get<std::string>();
    else if (field == "roles_claim") roles_claim = v.get<std::string>();
    else if (field == "sources_claim") sources_claim = v.get<std::string>();
    else if (field == "leeway_s") leeway_s = v.get<double>();
    else return UnknownField(path, "auth.jwt", field);
  }
  return arrow::Status::OK();
}

arrow::Status JwtConfig::Validate() const {
  if (algorithm != "HS256" && algorithm != "RS256" && algorithm != "ES256") {
    return arrow::Status::Invalid("auth.jwt.algorithm must be HS256, RS256 or ES256, not \"",
                                  algorithm, "\"");
  }
  if (key_file.empty()) {
    return arrow::Status::Invalid("auth.jwt.key_file is required (HS256: the shared secret; "
                                  "RS256/ES256: the PEM public key)");
  }
  if (issuer.empty() || audience.empty()) {
    return arrow::Status::Invalid("auth.jwt.issuer and auth.jwt.audience are required: "
                                  "every token's iss and aud are checked");
  }
  if (!(leeway_s >= 0 && leeway_s <= 3600)) {
    return arrow::Status::Invalid("auth.jwt.leeway_s must be between 0 and 3600, got ",
                                  leeway_s);
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
