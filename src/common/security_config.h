// The `auth` and `tls` sections of the server config (docs/security.md): who may call the
// node, and the certificate its Flight port serves.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <arrow/status.h>
#include <nlohmann/json_fwd.hpp>

namespace quiver {

/// `auth.jwt`: how JSON Web Tokens from an identity provider are verified.
struct JwtConfig {
  /// HS256, RS256 or ES256; a token signed otherwise is refused. Required.
  std::string algorithm;
  /// HS256: a file holding the shared secret (a trailing newline is dropped); RS256/ES256:
  /// the PEM public key. Re-read on SIGHUP. Required.
  std::string key_file;
  /// The `iss` and `aud` every token must carry (`aud` may be a list). Required.
  std::string issuer;
  std::string audience;
  /// Claims naming the caller, its tenant, its roles (a list, or a space-separated string)
  /// and the sources it may query (a list). Defaults: sub, tenant, roles, sources.
  std::string name_claim = "sub";
  std::string tenant_claim = "tenant";
  std::string roles_claim = "roles";
  std::string sources_claim = "sources";
  /// Clock skew allowed when checking `exp` and `nbf`, seconds. Default: 30.
  double leeway_s = 30;

  arrow::Status Load(const nlohmann::json& value, const std::string& path);
  arrow::Status Validate() const;
};

/// A tenant's share of the store (`auth.tenant_budgets`), enforced like the global budget:
/// its keys are evicted, lowest score first, to make room for its writes. 0: no limit.
struct TenantBudget {
  int64_t cache_size = 0;   ///< bytes of every kept version of the tenant's keys
  int64_t max_entries = 0;  ///< the tenant's keys

  bool limited() const { return cache_size > 0 || max_entries > 0; }
  bool operator==(const TenantBudget&) const = default;
};

/// Tenant name -> its budget; "*" is every tenant's not named.
using TenantBudgets = std::map<std::string, TenantBudget>;

/// \brief The budget of `tenant` ("*"'s if it has none of its own); nullptr if unlimited.
const TenantBudget* FindTenantBudget(const TenantBudgets& budgets, const std::string& tenant);

struct AuthConfig {
  /// "none" (every caller may do everything), "tokens" (bearer tokens from tokens_file) or
  /// "jwt" (JSON Web Tokens verified as `jwt` says).
  /// Default: none — refused on a non-loopback address unless allow_unauthenticated.
  std::string mode = "none";
  /// The tokens file (`quiver token add` writes it); re-read on SIGHUP. Required by "tokens".
  std::string tokens_file;
  /// Serve without authentication on an address other than loopback. Default: false.
  bool allow_unauthenticated = false;
  /// Append one JSON line per write, delete, invalidation and admin action here (the audit
  /// log); empty: none. Default: none.
  std::string audit_log;
  /// mode "jwt": how tokens are verified.
  JwtConfig jwt;
  /// Requests per second each tenant may make (a token bucket per tenant; admins and
  /// tenant-less callers are not limited); 0: no limit. Default: 0.
  double rate_limit_per_s = 0;
  /// Requests a tenant may make at once above its rate; 0: twice the rate (at least 1).
  double rate_limit_burst = 0;
  /// Per-tenant budgets, e.g. {"*": {"cache_size": "1GiB", "max_entries": 10000},
  /// "acme": {"cache_size": "10GiB"}}: a tenant's own entry replaces "*". Default: none.
  TenantBudgets tenant_budgets;

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
