// RedisUrl: parsing and redaction of redis:// and rediss:// URLs.
//
// Error messages quote only the scheme, never the rest of the URL: a mistyped URL such as
// "redis://user:secret/0" (the "@host" forgotten) would otherwise put the password into a
// log line as a "bad port".
#include <cctype>
#include <charconv>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "common/hex.h"
#include "redis/redis_client.h"

namespace quiver::redis {

namespace {

arrow::Result<std::string> PercentDecode(std::string_view text, std::string_view what) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    int hi = i + 2 < text.size() ? HexDigitValue(text[i + 1]) : -1;
    int lo = hi >= 0 ? HexDigitValue(text[i + 2]) : -1;
    if (lo < 0) {
      return arrow::Status::Invalid("redis URL: bad percent-encoding in the ", what);
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// Encodes the characters that would change how the user name parses back.
std::string PercentEncodeUser(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '%' || c == '@' || c == ':' || c == '/' || static_cast<unsigned char>(c) < 0x21 ||
        static_cast<unsigned char>(c) >= 0x7f) {
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// A decimal number in [min, max], digits only (no sign, no spaces).
bool ParseInt(std::string_view text, int min, int max, int* out) {
  if (text.empty() || text.size() > 10) return false;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return false;
  if (value < min || value > max) return false;
  *out = static_cast<int>(value);
  return true;
}

bool IsSchemeChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
}

}  // namespace

arrow::Result<RedisUrl> RedisUrl::Parse(std::string_view url) {
  RedisUrl result;
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) {
    return arrow::Status::Invalid("redis URL must start with redis:// or rediss://");
  }
  std::string scheme(url.substr(0, sep));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme == "rediss") {
    result.tls = true;
  } else if (scheme != "redis") {
    bool printable = !scheme.empty() && scheme.size() <= 16;
    for (char c : scheme) printable = printable && IsSchemeChar(c);
    if (!printable) {
      return arrow::Status::Invalid("redis URL must start with redis:// or rediss://");
    }
    return arrow::Status::Invalid("redis URL: unsupported scheme '", scheme,
                                  "' (expected redis or rediss)");
  }
  std::string_view rest = url.substr(sep + 3);

  // The user info ends at the last '@', so an unencoded '@' or '/' in a password still
  // parses (a database number never contains '@').
  size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    size_t colon = userinfo.find(':');
    ARROW_ASSIGN_OR_RAISE(result.user, PercentDecode(userinfo.substr(0, colon), "user name"));
    if (colon != std::string_view::npos) {
      ARROW_ASSIGN_OR_RAISE(result.password,
                            PercentDecode(userinfo.substr(colon + 1), "password"));
    }
  }

  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  if (hostport.find_first_of("?#") != std::string_view::npos ||
      path.find_first_of("?#") != std::string_view::npos) {
    return arrow::Status::Invalid("redis URL: query parameters are not supported");
  }

  std::string_view port_text;
  bool has_port = false;
  if (!hostport.empty() && hostport.front() == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) {
      return arrow::Status::Invalid("redis URL: unterminated '[' in the IPv6 host");
    }
    result.host = std::string(hostport.substr(1, close - 1));
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return arrow::Status::Invalid("redis URL: unexpected text after the IPv6 host");
      }
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    size_t colon = hostport.find(':');
    if (colon != std::string_view::npos &&
        hostport.find(':', colon + 1) != std::string_view::npos) {
      return arrow::Status::Invalid("redis URL: IPv6 hosts must be written in brackets");
    }
    result.host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = hostport.substr(colon + 1);
    }
  }
  if (result.host.empty()) return arrow::Status::Invalid("redis URL: the host is missing");
  if (has_port && !ParseInt(port_text, 1, 65535, &result.port)) {
    return arrow::Status::Invalid("redis URL: the port must be a number from 1 to 65535");
  }
  if (!path.empty() && !ParseInt(path, 0, 1 << 30, &result.db)) {
    return arrow::Status::Invalid("redis URL: the database must be a non-negative integer");
  }
  return result;
}

std::string RedisUrl::Redacted() const {
  std::string out = tls ? "rediss://" : "redis://";
  if (!user.empty() || !password.empty()) {
    out += PercentEncodeUser(user);
    if (!password.empty()) out += ":***";
    out += "@";
  }
  out += fmt::format("{}/{}", HostPort(), db);
  return out;
}

std::string RedisUrl::HostPort() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

}  // namespace quiver::redis
