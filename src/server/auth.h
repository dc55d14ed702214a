// Authentication and roles, shared by the Flight and HTTP interfaces (docs/security.md).
//
// With auth.mode "jwt", a caller presents a JSON Web Token from an identity provider instead:
// its signature (HS256, RS256 or ES256, as configured: a token signed with another algorithm
// is refused, which closes the HS256-with-the-public-key confusion), iss, aud, exp and nbf are
// checked with libjwt (Debian's libjwt-dev), and its claims name the caller, tenant, roles and
// sources.
//
// With auth.mode "tokens", a caller presents `authorization: Bearer <token>` (or, for clients
// that only speak basic auth, `authorization: Basic base64(name:<token>)`). A token reads
// `qvt_<id>_<secret>`: the id (12 hex digits) finds its record in the tokens file, which
// holds a random salt and SHA-256(salt || secret), never the secret, so a leaked tokens file
// gives no token away. Secrets are 160 random bits, so one salted hash is enough (a slow
// password hash protects guessable passwords, which these are not).
//
// A record names a tenant, roles and the query sources it may use. Roles: reader (gets,
// queries, listings, stats), writer (puts, deletes, invalidations, artifact fetches), admin
// (config-set, shrink; implies every other role and every source).
//
// Thread-safety: Authenticator is safe for concurrent use; Reload swaps the token table
// atomically (calls in flight keep the identity they were given).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>
#include <nlohmann/json_fwd.hpp>

#include "common/security_config.h"
#include "server/rate_limiter.h"

namespace quiver {

enum class Role : uint8_t { kReader = 1, kWriter = 2, kAdmin = 4 };

const char* RoleName(Role role);
/// \brief "reader", "writer" or "admin"; Invalid names the bad one.
arrow::Result<Role> ParseRole(std::string_view name);

/// Who a call is, once authenticated.
struct Identity {
  std::string name;    ///< the token's name ("anonymous" when auth is off)
  std::string tenant;  ///< empty when auth is off
  uint8_t roles = 0;   ///< Role bits
  std::vector<std::string> sources;  ///< query sources granted; "*": all

  bool Has(Role role) const;
  bool MayUseSource(const std::string& source) const;
  /// The identity of every call when auth is off: all roles, all sources.
  static std::shared_ptr<const Identity> Anonymous();
};

/// One line of the tokens file.
struct TokenRecord {
  std::string id;    ///< 12 hex digits, the token's public part
  std::string name;  ///< unique in the file; logs and the audit log show it
  std::string tenant;
  std::vector<std::string> roles;
  std::vector<std::string> sources;
  std::string salt;    ///< 32 hex digits
  std::string sha256;  ///< hex SHA-256(salt bytes || secret text)
  int64_t created_ms = 0;

  nlohmann::json ToJson() const;
  static arrow::Result<TokenRecord> FromJson(const nlohmann::json& j);
};

/// \brief A new token and its record (roles and sources checked). The token is shown once;
/// only the record is stored.
arrow::Result<std::pair<std::string, TokenRecord>> MakeToken(std::string name, std::string tenant,
                                                             std::vector<std::string> roles,
                                                             std::vector<std::string> sources);

/// \brief Read a tokens file ({"tokens": [records]}); a missing file is an empty list only
/// if `missing_ok`. Errors name the file and the record.
arrow::Result<std::vector<TokenRecord>> ReadTokensFile(const std::string& path, bool missing_ok);
/// \brief The file's text for `records`.
std::string TokensFileText(const std::vector<TokenRecord>& records);

class Authenticator {
 public:
  /// \brief Load the tokens file (when the mode needs one); its errors fail the start.
  static arrow::Result<std::unique_ptr<Authenticator>> Make(const AuthConfig& config);

  bool enabled() const { return config_.enabled(); }
  const AuthConfig& config() const { return config_; }

  /// \brief The caller presenting `authorization` (the header's value; empty: none). Off:
  /// Identity::Anonymous(). Missing, malformed, unknown or wrong: Flight UNAUTHENTICATED,
  /// whose message never repeats the token.
  arrow::Result<std::shared_ptr<const Identity>> Authenticate(std::string_view authorization) const;

  /// \brief OK, or a busy rejection when `who`'s tenant is over auth.rate_limit_per_s.
  arrow::Status Throttle(const Identity& who) const;

  /// \brief Re-read the tokens file (SIGHUP). On an error the old tokens stay in force.
  arrow::Status Reload();
  size_t token_count() const;

 private:
  struct Table;
  explicit Authenticator(AuthConfig config) : config_(std::move(config)) {}
  arrow::Result<std::shared_ptr<const Identity>> Verify(std::string_view token) const;
  arrow::Result<std::shared_ptr<const Identity>> VerifyJwt(std::string_view token) const;
  arrow::Result<std::shared_ptr<const Identity>> VerifyToken(std::string_view token) const;

  const AuthConfig config_;
  std::unique_ptr<TenantRateLimiter> limiter_;  // null: no limit
  mutable std::mutex mu_;
  std::shared_ptr<const Table> table_;  // guarded by mu_ (the pointer; the table is immutable)
};

/// \brief OK if `who` holds `role`; else Flight UNAUTHORIZED naming the role and `what`.
arrow::Status RequireRole(const Identity& who, Role role, std::string_view what);
/// \brief OK if `who` may query `source`; else Flight UNAUTHORIZED.
arrow::Status RequireSource(const Identity& who, const std::string& source);

/// \brief True for an error of the two kinds above: UNAUTHENTICATED or UNAUTHORIZED
/// (`*forbidden` tells which).
bool IsAuthError(const arrow::Status& status, bool* forbidden);

}  // namespace quiver
