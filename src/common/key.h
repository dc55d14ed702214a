// Object keys: `session/object` or `namespace/session/object`.
//
// A key is 2 or 3 segments joined by '/'. Each segment is 1-128 characters of
// [A-Za-z0-9._-] and is neither "." nor "..", so a key can be used as a relative path
// below a data directory without ever reaching outside it. '@' and '?' never occur in a
// key, which lets tickets append `@VERSION` unambiguously.
//
// Thread-safety: ObjectKey is an immutable value type.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

namespace quiver {

/// \brief Whether `c` may appear in a key segment: [A-Za-z0-9._-].
bool IsKeyChar(char c);

/// \brief Split `text` at every '/' (empty parts kept, so callers can name them).
std::vector<std::string_view> SplitKeyPath(std::string_view text);

inline constexpr size_t kMaxSegmentLength = 128;

/// \brief Check one key segment; the error names the segment and what is wrong with it.
arrow::Status ValidateKeySegment(std::string_view segment);

class ObjectKey {
 public:
  /// \brief Parse `a/b` or `a/b/c`, validating every segment.
  static arrow::Result<ObjectKey> Parse(std::string_view text);
  /// \brief Build a key from already-split segments (e.g. a Flight PATH descriptor).
  static arrow::Result<ObjectKey> FromSegments(const std::vector<std::string>& segments);

  const std::vector<std::string>& segments() const { return segments_; }
  /// The canonical text form, segments joined by '/'.
  const std::string& ToString() const { return text_; }

  bool operator==(const ObjectKey& other) const { return text_ == other.text_; }
  bool operator<(const ObjectKey& other) const { return text_ < other.text_; }

 private:
  explicit ObjectKey(std::vector<std::string> segments);
  std::vector<std::string> segments_;
  std::string text_;
};

/// \brief Validate a key prefix made of whole segments (`session` or `ns/session`),
/// as used by delete-prefix. Returns the canonical prefix text.
arrow::Result<std::string> ParseKeyPrefix(std::string_view text);

/// \brief True if `key` lies under the whole-segment prefix `prefix`.
bool KeyHasSegmentPrefix(const std::string& key, const std::string& prefix);

}  // namespace quiver
