#include "server/auth.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <arrow/util/base64.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/rejection.h"
#include "server/audit_log.h"
#include "server/rate_limiter.h"

namespace quiver {
namespace {

namespace fs = std::filesystem;

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("quiver-auth-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    path_ = (dir_ / "tokens.json").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Adds a token to the file; returns the token text.
  std::string Add(const std::string& name, std::vector<std::string> roles,
                  std::vector<std::string> sources = {}) {
    auto made = MakeToken(name, "acme", std::move(roles), std::move(sources));
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    records_.push_back(made->second);
    Write(TokensFileText(records_));
    return made->first;
  }
  void Write(const std::string& text) { std::ofstream(path_) << text; }

  std::unique_ptr<Authenticator> Make() {
    AuthConfig config;
    config.mode = "tokens";
    config.tokens_file = path_;
    auto auth = Authenticator::Make(config);
    EXPECT_TRUE(auth.ok()) << auth.status().ToString();
    return std::move(*auth);
  }

  static bool Refused(const arrow::Result<std::shared_ptr<const Identity>>& r, bool forbidden) {
    bool f = !forbidden;
    return !r.ok() && IsAuthError(r.status(), &f) && f == forbidden;
  }

  fs::path dir_;
  std::string path_;
  std::vector<TokenRecord> records_;
};

TEST_F(AuthTest, AValidTokenNamesItsIdentityAndAnyOtherIsUnauthenticated) {
  const std::string alice = Add("alice", {"reader", "writer"}, {"sales"});
  auto auth = Make();
  auto who = auth->Authenticate("Bearer " + alice);
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ((*who)->name, "alice");
  EXPECT_EQ((*who)->tenant, "acme");
  EXPECT_TRUE((*who)->Has(Role::kWriter));
  EXPECT_FALSE((*who)->Has(Role::kAdmin));
  EXPECT_TRUE((*who)->MayUseSource("sales"));
  EXPECT_FALSE((*who)->MayUseSource("hr"));

  std::string tampered = alice;
  tampered.back() = tampered.back() == '0' ? '1' : '0';
  EXPECT_TRUE(Refused(auth->Authenticate("Bearer " + tampered), false));
  EXPECT_TRUE(Refused(auth->Authenticate(""), false));
  EXPECT_TRUE(Refused(auth->Authenticate("Bearer"), false));
  EXPECT_TRUE(Refused(auth->Authenticate("Bearer qvt_short"), false));
  EXPECT_TRUE(Refused(auth->Authenticate("Token " + alice), false));
  // An unknown id of the right shape.
  std::string unknown = alice;
  unknown[4] = unknown[4] == 'a' ? 'b' : 'a';
  EXPECT_TRUE(Refused(auth->Authenticate("Bearer " + unknown), false));
  // The message never repeats the token.
  auto refused = auth->Authenticate("Bearer " + tampered);
  EXPECT_EQ(refused.status().message().find(tampered.substr(17)), std::string::npos);
}

TEST_F(AuthTest, BasicCredentialsCarryTheTokenAsPassword) {
  const std::string bob = Add("bob", {"reader"});
  auto auth = Make();
  auto who = auth->Authenticate("Basic " + arrow::util::base64_encode("bob:" + bob));
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ((*who)->name, "bob");
  EXPECT_TRUE(Refused(auth->Authenticate("Basic " + arrow::util::base64_encode("bob:nope")),
                      false));
  EXPECT_TRUE(Refused(auth->Authenticate("Basic !!!"), false));
}

TEST_F(AuthTest, RolesAndSourcesAreEnforcedAndAdminImpliesAll) {
  const std::string reader = Add("r", {"reader"});
  const std::string admin = Add("a", {"admin"});
  auto auth = Make();
  auto r = *auth->Authenticate("Bearer " + reader);
  auto a = *auth->Authenticate("Bearer " + admin);
  EXPECT_TRUE(RequireRole(*r, Role::kReader, "read").ok());
  bool forbidden = false;
  auto st = RequireRole(*r, Role::kWriter, "put");
  ASSERT_TRUE(IsAuthError(st, &forbidden));
  EXPECT_TRUE(forbidden);
  EXPECT_NE(st.message().find("writer"), std::string::npos) << st.message();
  EXPECT_FALSE(RequireSource(*r, "sales").ok());
  EXPECT_TRUE(RequireRole(*a, Role::kWriter, "put").ok());
  EXPECT_TRUE(RequireSource(*a, "sales").ok());
}

TEST_F(AuthTest, ReloadTakesRevocationsAndKeepsTheOldTokensOnABadFile) {
  const std::string alice = Add("alice", {"reader"});
  auto auth = Make();
  ASSERT_TRUE(auth->Authenticate("Bearer " + alice).ok());
  // A new token is unknown until the reload.
  const std::string bob = Add("bob", {"reader"});
  EXPECT_TRUE(Refused(auth->Authenticate("Bearer " + bob), false));
  ASSERT_TRUE(auth->Reload().ok());
  EXPECT_TRUE(auth->Authenticate("Bearer " + bob).ok());
  // A damaged file is refused and the tokens in force stay.
  Write("{\"tokens\": [");
  EXPECT_FALSE(auth->Reload().ok());
  EXPECT_TRUE(auth->Authenticate("Bearer " + bob).ok());
  // Revoking alice: gone after the reload.
  records_.erase(records_.begin());
  Write(TokensFileText(records_));
  ASSERT_TRUE(auth->Reload().ok());
  EXPECT_TRUE(Refused(auth->Authenticate("Bearer " + alice), false));
  EXPECT_TRUE(auth->Authenticate("Bearer " + bob).ok());
}

TEST_F(AuthTest, BadTokensFilesAreRefusedNamingTheProblem) {
  Add("alice", {"reader"});
  auto dup = records_.front();
  dup.id = "0123456789ab";
  records_.push_back(dup);
  Write(TokensFileText(records_));
  auto read = ReadTokensFile(path_, false);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("two tokens named 'alice'"), std::string::npos)
      << read.status().message();

  Write(R"({"tokens": [{"id": "0123456789ab", "name": "x", "roles": ["root"],
            "salt": "00000000000000000000000000000000",
            "sha256": "0000000000000000000000000000000000000000000000000000000000000000"}]})");
  read = ReadTokensFile(path_, false);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("unknown role 'root'"), std::string::npos)
      << read.status().message();

  EXPECT_FALSE(ReadTokensFile((dir_ / "missing.json").string(), false).ok());
  EXPECT_TRUE(ReadTokensFile((dir_ / "missing.json").string(), true)->empty());
  EXPECT_FALSE(MakeToken("bad name", "t", {"reader"}, {}).ok());
  EXPECT_FALSE(MakeToken("ok", "t", {}, {}).ok());
}

TEST_F(AuthTest, TheFileHoldsNoSecret) {
  const std::string alice = Add("alice", {"reader"});
  std::ifstream in(path_);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string secret = alice.substr(alice.rfind('_') + 1);
  EXPECT_EQ(text.find(secret), std::string::npos);
}

TEST(AuthConfigTest, WithoutAuthEveryoneIsTheAnonymousAdmin) {
  auto auth = Authenticator::Make(AuthConfig{});
  ASSERT_TRUE(auth.ok());
  auto who = (*auth)->Authenticate("");
  ASSERT_TRUE(who.ok());
  EXPECT_EQ((*who)->name, "anonymous");
  EXPECT_TRUE((*who)->Has(Role::kAdmin));
  AuthConfig tokens;
  tokens.mode = "tokens";
  EXPECT_FALSE(tokens.Validate().ok());  // no tokens_file
  AuthConfig bad;
  bad.mode = "ldap";
  EXPECT_FALSE(bad.Validate().ok());
}

TEST(AuthConfigTest, JwtNeedsAnAlgorithmAKeyAnIssuerAndAnAudience) {
  AuthConfig config;
  config.mode = "jwt";
  auto st = config.Validate();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("algorithm"), std::string::npos) << st;
  config.jwt.algorithm = "none";
  EXPECT_FALSE(config.Validate().ok());
  config.jwt.algorithm = "RS256";
  EXPECT_NE(config.Validate().message().find("key_file"), std::string::npos);
  config.jwt.key_file = "/nonexistent/key.pem";
  EXPECT_NE(config.Validate().message().find("issuer"), std::string::npos);
  config.jwt.issuer = "https://idp";
  config.jwt.audience = "quiver";
  EXPECT_TRUE(config.Validate().ok()) << config.Validate();
  // The key is read at start: a missing one fails it, naming the file.
  auto auth = Authenticator::Make(config);
  ASSERT_FALSE(auth.ok());
  EXPECT_NE(auth.status().message().find("/nonexistent/key.pem"), std::string::npos);
}

TEST(AuthConfigTest, LoopbackHosts) {
  for (const char* host : {"127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "example.com", ""}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

TEST(TenantRateLimiterTest, EachTenantHasItsOwnBucketRefilledAtTheRate) {
  double now = 100;
  TenantRateLimiter limiter(/*rate=*/2, /*burst=*/3, [&] { return now; });
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit("acme").ok()) << i;
  auto refused = limiter.Admit("acme");
  ASSERT_FALSE(refused.ok());
  auto rejection = RejectionOf(refused);
  ASSERT_NE(rejection, nullptr);
  EXPECT_EQ(rejection->kind(), RejectionKind::kBusy);
  EXPECT_EQ(rejection->setting(), "auth.rate_limit_per_s");
  EXPECT_NE(refused.message().find("tenant 'acme'"), std::string::npos) << refused;
  EXPECT_TRUE(limiter.Admit("globex").ok());  // another tenant's bucket is full
  now += 0.5;                                  // one token back
  EXPECT_TRUE(limiter.Admit("acme").ok());
  EXPECT_FALSE(limiter.Admit("acme").ok());
  now += 100;  // refills up to the burst, no further
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit("acme").ok()) << i;
  EXPECT_FALSE(limiter.Admit("acme").ok());
}

TEST(AuditLogTest, RecordsWritesDeletesInvalidationsAndAdminActionsOnly) {
  for (const char* kind : {"DoPut:object", "DoPut", "DoAction:delete", "DoAction:invalidate",
                           "DoAction:config-set", "DoAction:shrink", "DoAction:DELETE",
                           "PUT /v1/objects", "DELETE /v1/objects",
                           "POST /v1/actions/invalidate-tag"}) {
    EXPECT_TRUE(IsAuditedKind(kind)) << kind;
  }
  for (const char* kind : {"DoGet:object", "DoAction:stats", "DoAction:entries", "ListFlights",
                           "GET /v1/objects", "POST /v1/query", "POST /v1/actions/config-get"}) {
    EXPECT_FALSE(IsAuditedKind(kind)) << kind;
  }
}

}  // namespace
}  // namespace quiver
