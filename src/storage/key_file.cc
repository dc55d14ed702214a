#include "storage/key_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>

#include <arrow/status.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "common/hex.h"

namespace quiver {

namespace {

// A key file is tiny; refusing anything larger keeps a wrong path (a log, a disk image) from
// being read whole.
constexpr size_t kMaxKeyFileBytes = 4096;

bool AllHex(std::string_view text) {
  for (char c : text) {
    if (HexDigitValue(c) < 0) return false;
  }
  return true;
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Wipes a string holding key material before it is freed.
struct Wiped {
  std::string* text;
  ~Wiped() {
    if (!text->empty()) OPENSSL_cleanse(text->data(), text->size());
  }
};

// `where` names the source for errors ("key file '/etc/quiver/key'"); `content` is wiped.
arrow::Result<EncryptionKey> ParseKey(std::string content, const std::string& where) {
  Wiped wipe{&content};
  if (content.size() == kEncryptionKeyBytes) {
    if (AllHex(content)) {
      return arrow::Status::Invalid(
          where, " holds 32 hex digits (a 128-bit key); a key is 32 raw bytes or 64 hex digits");
    }
    return KeyFromBytes(content);
  }
  size_t begin = 0, end = content.size();
  while (begin < end && IsSpace(content[begin])) ++begin;
  while (end > begin && IsSpace(content[end - 1])) --end;
  std::string_view text(content.data() + begin, end - begin);
  if (text.size() != 2 * kEncryptionKeyBytes) {
    return arrow::Status::Invalid(where, " holds ", content.size(), " bytes (", text.size(),
                                  " without surrounding whitespace); a key is 32 raw bytes "
                                  "or 64 hex digits");
  }
  if (!AllHex(text)) {
    return arrow::Status::Invalid(where,
                                  " holds 64 characters that are not all hex digits; a key is "
                                  "32 raw bytes or 64 hex digits");
  }
  std::string bytes(kEncryptionKeyBytes, '\0');
  for (size_t i = 0; i < kEncryptionKeyBytes; ++i) {
    bytes[i] = static_cast<char>(HexDigitValue(text[2 * i]) << 4 | HexDigitValue(text[2 * i + 1]));
  }
  return KeyFromBytes(std::move(bytes));
}

}  // namespace

std::string KeyFingerprint(std::string_view bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  return HexEncode(digest, 8);
}

arrow::Result<EncryptionKey> KeyFromBytes(std::string bytes) {
  if (bytes.size() != kEncryptionKeyBytes) {
    Wiped wipe{&bytes};
    return arrow::Status::Invalid("an encryption key has 32 bytes, not ", bytes.size());
  }
  EncryptionKey key;
  key.id = KeyFingerprint(bytes);
  key.bytes = std::move(bytes);
  return key;
}

arrow::Result<EncryptionKey> LoadKeyFile(const std::string& path) {
  const std::string where = "key file '" + path + "'";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return arrow::Status::IOError(where, " cannot be read: ", std::strerror(errno));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return arrow::Status::IOError(where, " cannot be read: ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return arrow::Status::IOError(where, " is not a regular file");
  }
  if ((st.st_mode & 0027) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return arrow::Status::IOError(where, " has mode ", mode,
                                  ": a key file must not be accessible to others nor writable "
                                  "by its group (chmod 600 or 640)");
  }
  if (static_cast<size_t>(st.st_size) > kMaxKeyFileBytes) {
    ::close(fd);
    return arrow::Status::Invalid(where, " holds ", st.st_size,
                                  " bytes; a key is 32 raw bytes or 64 hex digits");
  }
  std::string content(kMaxKeyFileBytes + 1, '\0');
  Wiped wipe{&content};
  size_t used = 0;
  while (used < content.size()) {
    ssize_t n = ::read(fd, content.data() + used, content.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return arrow::Status::IOError(where, " cannot be read: ", std::strerror(err));
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  ::close(fd);
  if (used > kMaxKeyFileBytes) {
    return arrow::Status::Invalid(where, " is larger than ", kMaxKeyFileBytes,
                                  " bytes; a key is 32 raw bytes or 64 hex digits");
  }
  return ParseKey(std::string(content.data(), used), where);
}

arrow::Result<EncryptionKey> KeyFromEnv(const char* var) {
  const std::string where = std::string("environment variable ") + var;
  const char* value = std::getenv(var);
  if (value == nullptr) return arrow::Status::Invalid(where, " is not set");
  if (*value == '\0') return arrow::Status::Invalid(where, " is empty");
  return ParseKey(value, where);
}

}  // namespace quiver
