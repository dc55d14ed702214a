#include "common/key.h"

#include <fmt/format.h>

namespace quiver {

bool IsKeyChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-';
}

std::vector<std::string_view> SplitKeyPath(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t slash = text.find('/', start);
    if (slash == std::string_view::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, slash - start));
    start = slash + 1;
  }
}

// Printable rendering of untrusted input for error messages.
std::string Quote(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 160)) {
    if (c >= 0x20 && c < 0x7f) {
      out += c;
    } else {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    }
  }
  if (s.size() > 160) out += "...";
  return out + "'";
}


arrow::Status ValidateKeySegment(std::string_view segment) {
  if (segment.empty()) {
    return arrow::Status::Invalid("key segment is empty (keys look like session/object)");
  }
  if (segment.size() > kMaxSegmentLength) {
    return arrow::Status::Invalid("key segment ", Quote(segment), " is ", segment.size(),
                                  " characters long; the limit is ", kMaxSegmentLength);
  }
  if (segment == "." || segment == "..") {
    return arrow::Status::Invalid("key segment ", Quote(segment), " is not allowed");
  }
  for (char c : segment) {
    if (!IsKeyChar(c)) {
      return arrow::Status::Invalid("key segment ", Quote(segment),
                                    " contains a character outside [A-Za-z0-9._-]");
    }
  }
  return arrow::Status::OK();
}

ObjectKey::ObjectKey(std::vector<std::string> segments) : segments_(std::move(segments)) {
  for (size_t i = 0; i < segments_.size(); ++i) {
    if (i > 0) text_ += '/';
    text_ += segments_[i];
  }
}

arrow::Result<ObjectKey> ObjectKey::FromSegments(const std::vector<std::string>& segments) {
  if (segments.size() < 2 || segments.size() > 3) {
    return arrow::Status::Invalid("a key has 2 segments (session/object) or 3 ",
                                  "(namespace/session/object), got ", segments.size());
  }
  for (const auto& s : segments) ARROW_RETURN_NOT_OK(ValidateKeySegment(s));
  return ObjectKey(segments);
}

arrow::Result<ObjectKey> ObjectKey::Parse(std::string_view text) {
  std::vector<std::string> segments;
  for (auto part : SplitKeyPath(text)) segments.emplace_back(part);
  auto key = FromSegments(segments);
  if (!key.ok()) {
    return arrow::Status::Invalid("invalid key ", Quote(text), ": ", key.status().message());
  }
  return key;
}

arrow::Result<std::string> ParseKeyPrefix(std::string_view text) {
  auto parts = SplitKeyPath(text);
  if (parts.size() > 3) {
    return arrow::Status::Invalid("invalid key prefix ", Quote(text), ": more than 3 segments");
  }
  for (auto part : parts) {
    auto st = ValidateKeySegment(part);
    if (!st.ok()) {
      return arrow::Status::Invalid("invalid key prefix ", Quote(text), ": ", st.message());
    }
  }
  return std::string(text);
}

bool KeyHasSegmentPrefix(const std::string& key, const std::string& prefix) {
  if (key.size() < prefix.size() || key.compare(0, prefix.size(), prefix) != 0) return false;
  return key.size() == prefix.size() || key[prefix.size()] == '/';
}

}  // namespace quiver
