#include "server/http_cache_headers.h"

#include <ctime>

#include "server/ticket.h"

namespace quiver {

namespace {

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace

std::string EntityTagOf(const EntryMeta& meta) {
  return "\"" + std::to_string(meta.version) + "." + std::to_string(meta.created_ms) + "\"";
}

arrow::Result<EntityTag> ParseEntityTag(const std::string& raw) {
  std::string text = Trim(raw);
  if (text.rfind("W/", 0) == 0) text = text.substr(2);
  if (text.size() < 3 || text.front() != '"' || text.back() != '"') {
    return arrow::Status::Invalid("entity tag must be quoted, e.g. \"3\", got '", raw, "'");
  }
  const std::string inner = text.substr(1, text.size() - 2);
  const auto dot = inner.find('.');
  EntityTag tag;
  auto version = ParseVersion(inner.substr(0, dot), "entity tag version");
  if (!version.ok()) {
    return arrow::Status::Invalid("entity tag '", raw, "' is not one of Quiver's (\"VERSION\" or "
                                  "\"VERSION.CREATED_MS\")");
  }
  tag.version = *version;
  if (dot != std::string::npos) {
    const std::string created = inner.substr(dot + 1);
    char* end = nullptr;
    long long ms = std::strtoll(created.c_str(), &end, 10);
    if (created.empty() || *end != '\0' || ms < 0) {
      return arrow::Status::Invalid("entity tag '", raw, "' is not one of Quiver's");
    }
    tag.created_ms = ms;
  }
  return tag;
}

std::string HttpDate(int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char out[64];
  std::strftime(out, sizeof(out), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return out;
}

void SetCacheHeaders(const EntryMeta& meta, int64_t now_ms, httplib::Response* res) {
  res->set_header("ETag", EntityTagOf(meta));
  if (meta.created_ms > 0) res->set_header("Last-Modified", HttpDate(meta.created_ms));
  if (meta.expires_ms > 0) {
    const int64_t left_s = std::max<int64_t>(0, (meta.expires_ms - now_ms) / 1000);
    res->set_header("Cache-Control", "max-age=" + std::to_string(left_s));
    res->set_header("Expires", HttpDate(meta.expires_ms));
  } else {
    // An object may change at any time: keep it, but ask first (the ETag makes that cheap).
    res->set_header("Cache-Control", "no-cache");
  }
}

bool NoneMatch(const httplib::Request& req, const EntryMeta& meta) {
  if (!req.has_header("If-None-Match")) return false;
  const std::string header = req.get_header_value("If-None-Match");
  if (Trim(header) == "*") return true;
  const std::string mine = EntityTagOf(meta);
  size_t start = 0;
  while (start <= header.size()) {
    size_t comma = header.find(',', start);
    std::string one = Trim(header.substr(start, comma == std::string::npos ? std::string::npos
                                                                           : comma - start));
    if (one.rfind("W/", 0) == 0) one = one.substr(2);  // weak comparison (RFC 9110 13.1.2)
    if (one == mine) return true;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return false;
}

}  // namespace quiver
