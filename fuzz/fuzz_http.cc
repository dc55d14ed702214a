// What the HTTP interface parses from a request: query strings (views: columns, filter,
// sort, offset, limit, format, version), ETags of If-Match / If-None-Match, host:port and
// byte sizes. The input is a query string "a=1&b=2" whose first line is also tried as each
// of the single-value parsers.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "common/config.h"
#include "common/http_config.h"
#include "server/http_cache_headers.h"
#include "server/view_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string line = text.substr(0, text.find('\n'));
  (void)quiver::ParseEntityTag(line);
  (void)quiver::ParseHostPort(line, "fuzz");
  (void)quiver::ParseByteSize(line);
  std::multimap<std::string, std::string> params;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('&', start);
    if (end == std::string::npos) end = text.size();
    const std::string pair = text.substr(start, end - start);
    const size_t eq = pair.find('=');
    params.emplace(pair.substr(0, eq), eq == std::string::npos ? "" : pair.substr(eq + 1));
    start = end + 1;
  }
  (void)quiver::ParseViewParams("s/o", params);
  return 0;
}
