// EncryptionKey: a 256-bit secret key and its public fingerprint, loaded from a key file or
// an environment variable. Used for encryption at rest (EncryptedBlobStore) and for S3
// SSE-C keys.
//
// Accepted forms: exactly 32 raw bytes, or 64 hexadecimal digits (either case) with
// surrounding whitespace (a trailing newline) ignored. 32 bytes that are all hex digits are
// refused as ambiguous: that is a 128-bit key in hex, not a 256-bit one.
//
// A key file must not be accessible to "other" users and must not be writable by its group
// (mode & 0027 == 0, e.g. 0600 or 0640 for a service group); otherwise it is refused, as ssh
// refuses an open private key. Symlinks are followed (Kubernetes mounts secrets through
// them: give the volume `defaultMode: 0400`).
//
// The key bytes never appear in an error message or a log line; errors name the file or the
// variable and say what is wrong with it (size, not hex, unreadable, permissions).
//
// Thread-safety: the functions are safe to call concurrently.
#pragma once

#include <string>
#include <string_view>

#include <arrow/result.h>

namespace quiver {

struct EncryptionKey {
  /// The key's fingerprint: the first 16 hex digits of SHA-256(bytes). Public; recorded in
  /// encrypted blobs and index entries to say which key a blob needs.
  std::string id;
  /// The 32 raw key bytes. Secret: never log or print them.
  std::string bytes;
};

/// \brief Bytes of a 256-bit key.
inline constexpr size_t kEncryptionKeyBytes = 32;

/// \brief Compute a key's id: the first 16 hex digits of the SHA-256 of `bytes`.
std::string KeyFingerprint(std::string_view bytes);

/// \brief Make a key from its 32 raw bytes. Invalid unless there are exactly 32.
arrow::Result<EncryptionKey> KeyFromBytes(std::string bytes);

/// \brief Read a key file (see the top of this header for the accepted forms and modes).
arrow::Result<EncryptionKey> LoadKeyFile(const std::string& path);

/// \brief Read a key from environment variable `var` (same textual forms as a key file).
arrow::Result<EncryptionKey> KeyFromEnv(const char* var);

}  // namespace quiver
