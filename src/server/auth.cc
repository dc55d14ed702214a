#include "server/auth.h"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <arrow/flight/types.h>
#include <arrow/util/base64.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <jwt.h>
#include <openssl/rand.h>

#include "common/hex.h"
#include "common/key.h"

namespace quiver {

namespace flight = arrow::flight;
using json = nlohmann::json;

namespace {

constexpr std::string_view kTokenPrefix = "qvt_";
constexpr size_t kIdHexDigits = 12;
constexpr size_t kSecretBytes = 20;
constexpr size_t kSaltBytes = 16;

arrow::Status Unauthenticated(std::string message) {
  return flight::MakeFlightError(flight::FlightStatusCode::Unauthenticated, std::move(message),
                                 R"({"error":"unauthenticated"})");
}

arrow::Status Forbidden(std::string message) {
  return flight::MakeFlightError(flight::FlightStatusCode::Unauthorized, std::move(message),
                                 R"({"error":"forbidden"})");
}

arrow::Result<std::string> RandomBytesHex(size_t n) {
  std::string raw(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(n)) != 1) {
    return arrow::Status::IOError("cannot draw random bytes (OpenSSL RAND_bytes failed)");
  }
  return HexEncode(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

bool IsHex(std::string_view s, size_t digits) {
  if (s.size() != digits) return false;
  for (char c : s) {
    if (HexDigitValue(c) < 0 || (c >= 'A' && c <= 'F')) return false;
  }
  return true;
}

std::string HexToBytes(std::string_view hex) {
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>(HexDigitValue(hex[2 * i]) * 16 + HexDigitValue(hex[2 * i + 1]));
  }
  return out;
}

// hex SHA-256(salt bytes || secret text).
std::string SaltedHash(std::string_view salt_hex, std::string_view secret) {
  const std::string salt = HexToBytes(salt_hex);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, salt.data(), salt.size());
  EVP_DigestUpdate(ctx, secret.data(), secret.size());
  EVP_DigestFinal_ex(ctx, digest, &length);
  EVP_MD_CTX_free(ctx);
  return HexEncode(digest, length);
}

bool ValidTokenName(const std::string& name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
          c == '@')) {
      return false;
    }
  }
  return true;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kReader:
      return "reader";
    case Role::kWriter:
      return "writer";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

arrow::Result<Role> ParseRole(std::string_view name) {
  for (Role r : {Role::kReader, Role::kWriter, Role::kAdmin}) {
    if (name == RoleName(r)) return r;
  }
  return arrow::Status::Invalid("unknown role '", name, "' (roles: reader, writer, admin)");
}

bool Identity::Has(Role role) const {
  const auto admin = static_cast<uint8_t>(Role::kAdmin);
  return (roles & admin) != 0 || (roles & static_cast<uint8_t>(role)) != 0;
}

bool Identity::MayUseSource(const std::string& source) const {
  if (Has(Role::kAdmin)) return true;
  for (const auto& s : sources) {
    if (s == "*" || s == source) return true;
  }
  return false;
}

std::shared_ptr<const Identity> Identity::Anonymous() {
  static const auto anonymous = [] {
    auto id = std::make_shared<Identity>();
    id->name = "anonymous";
    id->roles = static_cast<uint8_t>(Role::kAdmin);
    id->sources = {"*"};
    return id;
  }();
  return anonymous;
}

json TokenRecord::ToJson() const {
  return {{"id", id},         {"name", name},     {"tenant", tenant},
          {"roles", roles},   {"sources", sources}, {"salt", salt},
          {"sha256", sha256}, {"created_ms", created_ms}};
}

arrow::Result<TokenRecord> TokenRecord::FromJson(const json& j) {
  if (!j.is_object()) return arrow::Status::Invalid("a token record must be a JSON object");
  TokenRecord r;
  try {
    r.id = j.at("id").get<std::string>();
    r.name = j.at("name").get<std::string>();
    r.tenant = j.value("tenant", "");
    r.roles = j.at("roles").get<std::vector<std::string>>();
    r.sources = j.value("sources", std::vector<std::string>{});
    r.salt = j.at("salt").get<std::string>();
    r.sha256 = j.at("sha256").get<std::string>();
    r.created_ms = j.value("created_ms", int64_t{0});
  } catch (const json::exception& e) {
    return arrow::Status::Invalid("token record: ", e.what());
  }
  if (!ValidTokenName(r.name)) {
    return arrow::Status::Invalid("token name '", r.name,
                                  "' must be 1-128 letters, digits, '-', '_', '.' or '@'");
  }
  if (!IsHex(r.id, kIdHexDigits) || !IsHex(r.salt, 2 * kSaltBytes) || !IsHex(r.sha256, 64)) {
    return arrow::Status::Invalid("token '", r.name,
                                  "': id, salt or sha256 is not lower-case hex of its length");
  }
  if (r.roles.empty()) return arrow::Status::Invalid("token '", r.name, "' has no roles");
  if (!r.tenant.empty()) {
    auto valid = ValidateKeySegment(r.tenant);
    if (!valid.ok()) {
      return arrow::Status::Invalid("token '", r.name, "': tenant '", r.tenant,
                                    "' must be a key segment: ", valid.message());
    }
  }
  for (const auto& role : r.roles) {
    auto parsed = ParseRole(role);
    if (!parsed.ok()) return arrow::Status::Invalid("token '", r.name, "': ", parsed.status().message());
  }
  return r;
}

arrow::Result<std::pair<std::string, TokenRecord>> MakeToken(std::string name, std::string tenant,
                                                             std::vector<std::string> roles,
                                                             std::vector<std::string> sources) {
  TokenRecord r;
  ARROW_ASSIGN_OR_RAISE(r.id, RandomBytesHex(kIdHexDigits / 2));
  ARROW_ASSIGN_OR_RAISE(r.salt, RandomBytesHex(kSaltBytes));
  ARROW_ASSIGN_OR_RAISE(auto secret, RandomBytesHex(kSecretBytes));
  r.name = std::move(name);
  r.tenant = std::move(tenant);
  r.roles = std::move(roles);
  r.sources = std::move(sources);
  r.sha256 = SaltedHash(r.salt, secret);
  r.created_ms = NowMs();
  // The same checks a record read back from the file gets.
  ARROW_RETURN_NOT_OK(TokenRecord::FromJson(r.ToJson()).status());
  return std::make_pair(std::string(kTokenPrefix) + r.id + "_" + secret, std::move(r));
}

arrow::Result<std::vector<TokenRecord>> ReadTokensFile(const std::string& path, bool missing_ok) {
  std::ifstream in(path);
  if (!in) {
    if (missing_ok) return std::vector<TokenRecord>{};
    return arrow::Status::IOError("cannot read tokens file '", path, "'");
  }
  json doc;
  try {
    doc = json::parse(in);
  } catch (const json::parse_error& e) {
    return arrow::Status::Invalid("tokens file '", path, "' is not valid JSON: ", e.what());
  }
  if (!doc.is_object() || !doc.contains("tokens") || !doc["tokens"].is_array()) {
    return arrow::Status::Invalid("tokens file '", path, "' must hold {\"tokens\": [...]}");
  }
  std::vector<TokenRecord> records;
  for (size_t i = 0; i < doc["tokens"].size(); ++i) {
    auto r = TokenRecord::FromJson(doc["tokens"][i]);
    if (!r.ok()) {
      return arrow::Status::Invalid("tokens file '", path, "', token ", i, ": ",
                                    r.status().message());
    }
    for (const auto& other : records) {
      if (other.name == r->name || other.id == r->id) {
        return arrow::Status::Invalid("tokens file '", path, "': two tokens named '", r->name,
                                      "' or with id ", r->id);
      }
    }
    records.push_back(std::move(*r));
  }
  return records;
}

std::string TokensFileText(const std::vector<TokenRecord>& records) {
  json list = json::array();
  for (const auto& r : records) list.push_back(r.ToJson());
  return json{{"tokens", list}}.dump(2) + "\n";
}

struct Authenticator::Table {
  struct Entry {
    TokenRecord record;
    std::shared_ptr<const Identity> identity;
  };
  std::unordered_map<std::string, Entry> by_id;
  std::string jwt_key;  // mode jwt: the secret or PEM public key
};

arrow::Result<std::unique_ptr<Authenticator>> Authenticator::Make(const AuthConfig& config) {
  ARROW_RETURN_NOT_OK(config.Validate());
  std::unique_ptr<Authenticator> self(new Authenticator(config));
  self->table_ = std::make_shared<Table>();
  if (config.enabled() && config.rate_limit_per_s > 0) {
    const double burst =
        config.rate_limit_burst > 0 ? config.rate_limit_burst : 2 * config.rate_limit_per_s;
    self->limiter_ = std::make_unique<TenantRateLimiter>(config.rate_limit_per_s, burst);
  }
  if (config.mode != "none") ARROW_RETURN_NOT_OK(self->Reload());
  return self;
}

arrow::Status Authenticator::Reload() {
  if (config_.mode == "jwt") {
    std::ifstream in(config_.jwt.key_file, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    std::string key = text.str();
    if (config_.jwt.algorithm == "HS256") {
      while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
    }
    if (!in || key.empty()) {
      return arrow::Status::IOError("cannot read auth.jwt.key_file '", config_.jwt.key_file,
                                    "' (or it is empty)");
    }
    auto table = std::make_shared<Table>();
    table->jwt_key = std::move(key);
    std::lock_guard lock(mu_);
    table_ = std::move(table);
    return arrow::Status::OK();
  }
  if (config_.mode != "tokens") return arrow::Status::OK();
  ARROW_ASSIGN_OR_RAISE(auto records, ReadTokensFile(config_.tokens_file, /*missing_ok=*/false));
  auto table = std::make_shared<Table>();
  for (auto& r : records) {
    auto id = std::make_shared<Identity>();
    id->name = r.name;
    id->tenant = r.tenant;
    for (const auto& role : r.roles) id->roles |= static_cast<uint8_t>(*ParseRole(role));
    id->sources = r.sources;
    std::string key = r.id;
    table->by_id.emplace(std::move(key), Table::Entry{std::move(r), std::move(id)});
  }
  std::lock_guard lock(mu_);
  table_ = std::move(table);
  return arrow::Status::OK();
}

arrow::Status Authenticator::Throttle(const Identity& who) const {
  if (!limiter_ || who.tenant.empty() || who.Has(Role::kAdmin)) return arrow::Status::OK();
  return limiter_->Admit(who.tenant);
}

size_t Authenticator::token_count() const {
  std::lock_guard lock(mu_);
  return table_->by_id.size();
}

arrow::Result<std::shared_ptr<const Identity>> Authenticator::Authenticate(
    std::string_view authorization) const {
  if (!enabled()) return Identity::Anonymous();
  if (authorization.empty()) {
    return Unauthenticated("authentication required: send 'authorization: Bearer <token>'");
  }
  const auto space = authorization.find(' ');
  const std::string_view scheme = authorization.substr(0, space);
  std::string_view credential =
      space == std::string_view::npos ? std::string_view() : authorization.substr(space + 1);
  while (!credential.empty() && credential.front() == ' ') credential.remove_prefix(1);
  auto equals = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(a[i])) != b[i]) return false;
    }
    return true;
  };
  if (equals(scheme, "bearer")) return VerifyToken(credential);
  if (equals(scheme, "basic")) {
    // Basic auth for clients that only speak it: the password is the token.
    auto decoded = arrow::util::base64_decode(credential);
    if (!decoded.ok()) return Unauthenticated("malformed basic credentials (not base64)");
    const auto colon = decoded->find(':');
    if (colon == std::string::npos) {
      return Unauthenticated("malformed basic credentials (expected name:token)");
    }
    return VerifyToken(std::string_view(*decoded).substr(colon + 1));
  }
  return Unauthenticated("unsupported authorization scheme (use Bearer <token>)");
}

arrow::Result<std::shared_ptr<const Identity>> Authenticator::VerifyToken(
    std::string_view token) const {
  return config_.mode == "jwt" ? VerifyJwt(token) : Verify(token);
}

namespace {

// A claim that is a list of strings, or (for roles, as OAuth scopes are) one string of
// space-separated words; absent: empty.
arrow::Result<std::vector<std::string>> StringList(const json& claims, const std::string& name) {
  std::vector<std::string> out;
  if (!claims.contains(name)) return out;
  const json& v = claims[name];
  if (v.is_string()) {
    std::stringstream words(v.get<std::string>());
    for (std::string w; words >> w;) out.push_back(w);
    return out;
  }
  if (!v.is_array()) return Unauthenticated("claim '" + name + "' must be a list of strings");
  for (const auto& item : v) {
    if (!item.is_string()) return Unauthenticated("claim '" + name + "' must be a list of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

// The registered claims: iss, aud (a string or a list), exp (required), nbf.
arrow::Status CheckRegisteredClaims(const json& claims, const JwtConfig& config) {
  if (!claims.contains("iss") || claims["iss"] != config.issuer) {
    return Unauthenticated("token refused: wrong or missing issuer (iss)");
  }
  bool audience = false;
  if (claims.contains("aud")) {
    const json& aud = claims["aud"];
    if (aud.is_string()) audience = aud == config.audience;
    if (aud.is_array()) {
      for (const auto& a : aud) audience = audience || (a.is_string() && a == config.audience);
    }
  }
  if (!audience) return Unauthenticated("token refused: wrong or missing audience (aud)");
  const double now = std::chrono::duration<double>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  if (!claims.contains("exp") || !claims["exp"].is_number()) {
    return Unauthenticated("token refused: it has no expiry (exp)");
  }
  if (now > claims["exp"].get<double>() + config.leeway_s) {
    return Unauthenticated("token refused: expired");
  }
  if (claims.contains("nbf") &&
      (!claims["nbf"].is_number() || now + config.leeway_s < claims["nbf"].get<double>())) {
    return Unauthenticated("token refused: not valid yet (nbf)");
  }
  return arrow::Status::OK();
}

}  // namespace

arrow::Result<std::shared_ptr<const Identity>> Authenticator::VerifyJwt(
    std::string_view token) const {
  std::shared_ptr<const Table> table;
  {
    std::lock_guard lock(mu_);
    table = table_;
  }
  const JwtConfig& config = config_.jwt;
  const std::string text(token);
  jwt_t* raw = nullptr;
  const int rc = jwt_decode(&raw, text.c_str(),
                            reinterpret_cast<const unsigned char*>(table->jwt_key.data()),
                            static_cast<int>(table->jwt_key.size()));
  std::unique_ptr<jwt_t, void (*)(jwt_t*)> decoded(raw, jwt_free);
  if (rc != 0 || !decoded) {
    return Unauthenticated("token refused: malformed, or its signature does not verify");
  }
  // Only the configured algorithm: an RS256 public key used as an HS256 secret must not pass.
  if (jwt_get_alg(decoded.get()) != jwt_str_alg(config.algorithm.c_str())) {
    return Unauthenticated("token refused: signed with " +
                           std::string(jwt_alg_str(jwt_get_alg(decoded.get()))) + ", not " +
                           config.algorithm);
  }
  std::unique_ptr<char, void (*)(void*)> grants(jwt_get_grants_json(decoded.get(), nullptr),
                                                std::free);
  json claims = grants ? json::parse(grants.get(), nullptr, /*allow_exceptions=*/false)
                       : json();
  if (!claims.is_object()) return Unauthenticated("token refused: its claims are not an object");
  ARROW_RETURN_NOT_OK(CheckRegisteredClaims(claims, config));
  auto id = std::make_shared<Identity>();
  if (claims.contains(config.name_claim) && claims[config.name_claim].is_string()) {
    id->name = claims[config.name_claim].get<std::string>();
  }
  if (id->name.empty()) return Unauthenticated("token refused: no '" + config.name_claim + "' claim");
  if (claims.contains(config.tenant_claim)) {
    if (!claims[config.tenant_claim].is_string() ||
        !ValidateKeySegment(claims[config.tenant_claim].get<std::string>()).ok()) {
      return Unauthenticated("token refused: claim '" + config.tenant_claim +
                             "' must be a key segment ([A-Za-z0-9._-], 1-128 characters)");
    }
    id->tenant = claims[config.tenant_claim].get<std::string>();
  }
  ARROW_ASSIGN_OR_RAISE(auto roles, StringList(claims, config.roles_claim));
  for (const auto& role : roles) {
    auto parsed = ParseRole(role);
    if (parsed.ok()) id->roles |= static_cast<uint8_t>(*parsed);  // other roles: not ours
  }
  // No role of ours: authenticated, and then refused every call (PERMISSION_DENIED).
  ARROW_ASSIGN_OR_RAISE(id->sources, StringList(claims, config.sources_claim));
  return std::shared_ptr<const Identity>(std::move(id));
}

arrow::Result<std::shared_ptr<const Identity>> Authenticator::Verify(std::string_view token) const {
  // qvt_<12 hex id>_<40 hex secret>
  const size_t expected = kTokenPrefix.size() + kIdHexDigits + 1 + 2 * kSecretBytes;
  if (token.size() != expected || token.substr(0, kTokenPrefix.size()) != kTokenPrefix ||
      token[kTokenPrefix.size() + kIdHexDigits] != '_') {
    return Unauthenticated("malformed token (Quiver tokens read qvt_<id>_<secret>)");
  }
  const std::string id(token.substr(kTokenPrefix.size(), kIdHexDigits));
  const std::string_view secret = token.substr(kTokenPrefix.size() + kIdHexDigits + 1);
  std::shared_ptr<const Table> table;
  {
    std::lock_guard lock(mu_);
    table = table_;
  }
  auto it = table->by_id.find(id);
  if (it == table->by_id.end()) return Unauthenticated("unknown or revoked token");
  const std::string hash = SaltedHash(it->second.record.salt, secret);
  const std::string& want = it->second.record.sha256;
  if (hash.size() != want.size() || CRYPTO_memcmp(hash.data(), want.data(), want.size()) != 0) {
    return Unauthenticated("unknown or revoked token");
  }
  return it->second.identity;
}

arrow::Status RequireRole(const Identity& who, Role role, std::string_view what) {
  if (who.Has(role)) return arrow::Status::OK();
  return Forbidden("'" + who.name + "' may not " + std::string(what) + ": that needs the " +
                   RoleName(role) + " role");
}

arrow::Status RequireSource(const Identity& who, const std::string& source) {
  if (who.MayUseSource(source)) return arrow::Status::OK();
  return Forbidden("'" + who.name + "' is not granted source '" + source + "'");
}

bool IsAuthError(const arrow::Status& status, bool* forbidden) {
  auto detail = flight::FlightStatusDetail::UnwrapStatus(status);
  if (!detail) return false;
  if (detail->code() == flight::FlightStatusCode::Unauthenticated) {
    *forbidden = false;
    return true;
  }
  if (detail->code() == flight::FlightStatusCode::Unauthorized) {
    *forbidden = true;
    return true;
  }
  return false;
}

}  // namespace quiver
