// Credentials: the authorization header (Bearer / Basic) checked against a tokens file and
// against JWT (HS256) verification, node tickets, and Flame's tickets and keys.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "server/auth.h"
#include "server/flame_protocol.h"
#include "server/node_ticket.h"

namespace {

// The tokens file and JWT key, in a directory removed when the fuzzer exits.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "quiver-fuzz-auth-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) __builtin_trap();
    path = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

std::unique_ptr<quiver::Authenticator> Make(const std::string& mode) {
  static const TempDir temp;
  const std::string dir = temp.path.string();
  quiver::AuthConfig config;
  config.mode = mode;
  if (mode == "tokens") {
    auto made = quiver::MakeToken("fuzz", "acme", {"reader"}, {"*"});
    std::ofstream(dir + "/tokens.json") << quiver::TokensFileText({made->second});
    config.tokens_file = dir + "/tokens.json";
  } else {
    std::ofstream(dir + "/jwt-key") << "a-fuzzing-secret-of-some-length-0123456789";
    config.jwt.algorithm = "HS256";
    config.jwt.key_file = dir + "/jwt-key";
    config.jwt.issuer = "https://idp";
    config.jwt.audience = "quiver";
  }
  auto auth = quiver::Authenticator::Make(config);
  if (!auth.ok()) __builtin_trap();
  return std::move(*auth);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto tokens = Make("tokens");
  static const auto jwt = Make("jwt");
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const auto* auth : {tokens.get(), jwt.get()}) {
    (void)auth->Authenticate(text);
    (void)auth->Authenticate("Bearer " + text);
    (void)auth->Authenticate("Basic " + text);
  }
  (void)quiver::VerifyNodeTicket(text, "cluster-secret");
  (void)quiver::flame::ParseFlameTicket(text);
  (void)quiver::flame::ParseFlameKey(text);
  return 0;
}
