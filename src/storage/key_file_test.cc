#include "storage/key_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/testing.h"

namespace quiver {
namespace {

namespace fs = std::filesystem;

// A key whose hex form contains both digits and letters.
const std::string kHex = "00112233445566778899aabbccddeeff0f1e2d3c4b5a69788796a5b4c3d2e1f0";

std::string RawKey() {
  std::string raw;
  for (size_t i = 0; i < kHex.size(); i += 2) {
    raw += static_cast<char>(std::stoi(kHex.substr(i, 2), nullptr, 16));
  }
  return raw;
}

class EncryptionKeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quiver-keyfile-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& content, mode_t mode = 0600) {
    std::string path = dir_ + "/key" + std::to_string(n_++);
    std::ofstream(path, std::ios::binary) << content;
    ::chmod(path.c_str(), mode);
    return path;
  }

  // The error mentions `path` and `what`, and none of the key's bytes or digits.
  static void ExpectError(const arrow::Status& st, const std::string& where,
                          const std::string& what) {
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find(where), std::string::npos) << st;
    EXPECT_NE(st.message().find(what), std::string::npos) << st;
    EXPECT_EQ(st.message().find(kHex.substr(0, 12)), std::string::npos) << st;
    EXPECT_EQ(st.message().find(RawKey().substr(0, 6)), std::string::npos) << st;
  }

  std::string dir_;
  int n_ = 0;
};

TEST_F(EncryptionKeyFileTest, AcceptsHexWithWhitespaceAndRawBytes) {
  ASSERT_OK_AND_ASSIGN(auto from_hex, LoadKeyFile(Write(kHex + "\n")));
  EXPECT_EQ(from_hex.bytes, RawKey());
  std::string upper_hex = kHex;
  for (auto& c : upper_hex) c = static_cast<char>(std::toupper(c));
  ASSERT_OK_AND_ASSIGN(auto upper, LoadKeyFile(Write("  \t" + upper_hex + "\r\n\n")));
  EXPECT_EQ(upper.bytes, RawKey());
  ASSERT_OK_AND_ASSIGN(auto raw, LoadKeyFile(Write(RawKey(), 0400)));
  EXPECT_EQ(raw.bytes, RawKey());
  EXPECT_EQ(raw.id, from_hex.id);
  EXPECT_EQ(raw.id.size(), 16u);
  EXPECT_EQ(raw.id, KeyFingerprint(RawKey()));
  EXPECT_NE(raw.id, kHex.substr(0, 16)) << "the id is a digest, not the key";
  // A group-readable file is fine (a service group).
  EXPECT_OK(LoadKeyFile(Write(kHex, 0640)).status());
}

TEST_F(EncryptionKeyFileTest, ErrorsNameThePathAndTheProblemButNeverTheKey) {
  std::string path = Write(kHex.substr(0, 62) + "\n");
  ExpectError(LoadKeyFile(path).status(), path, "32 raw bytes or 64 hex digits");
  path = Write(kHex.substr(0, 63) + "x");
  ExpectError(LoadKeyFile(path).status(), path, "not all hex digits");
  path = Write(kHex.substr(0, 32));
  ExpectError(LoadKeyFile(path).status(), path, "128-bit");
  path = Write(std::string(10000, 'a'));
  ExpectError(LoadKeyFile(path).status(), path, "bytes");
  path = Write(kHex, 0644);
  ExpectError(LoadKeyFile(path).status(), path, "mode 0644");
  path = Write(kHex, 0620);
  ExpectError(LoadKeyFile(path).status(), path, "mode 0620");
  ExpectError(LoadKeyFile(dir_ + "/missing").status(), dir_ + "/missing", "cannot be read");
  ExpectError(LoadKeyFile(dir_).status(), dir_, "not a regular file");
}

TEST_F(EncryptionKeyFileTest, KeyFromEnv) {
  ::setenv("QUIVER_TEST_KEY", (kHex + "\n").c_str(), 1);
  ASSERT_OK_AND_ASSIGN(auto key, KeyFromEnv("QUIVER_TEST_KEY"));
  EXPECT_EQ(key.bytes, RawKey());
  ::setenv("QUIVER_TEST_KEY", kHex.substr(1).c_str(), 1);
  ExpectError(KeyFromEnv("QUIVER_TEST_KEY").status(), "QUIVER_TEST_KEY", "bytes");
  ::setenv("QUIVER_TEST_KEY", "", 1);
  ExpectError(KeyFromEnv("QUIVER_TEST_KEY").status(), "QUIVER_TEST_KEY", "empty");
  ::unsetenv("QUIVER_TEST_KEY");
  ExpectError(KeyFromEnv("QUIVER_TEST_KEY").status(), "QUIVER_TEST_KEY", "not set");
}

TEST_F(EncryptionKeyFileTest, KeyFromBytesChecksTheSize) {
  EXPECT_TRUE(KeyFromBytes("short").status().IsInvalid());
  ASSERT_OK_AND_ASSIGN(auto key, KeyFromBytes(RawKey()));
  EXPECT_EQ(key.id, KeyFingerprint(RawKey()));
}

}  // namespace
}  // namespace quiver
