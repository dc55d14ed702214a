// Object keys, prefixes, descriptor paths and object tickets ("s/o@3?if_none_match=2"), as
// clients send them in DoGet tickets, PATH descriptors and HTTP paths.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/key.h"
#include "server/ticket.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto key = quiver::ObjectKey::Parse(text);
  if (key.ok()) {
    // A parsed key prints back to the text that parses to the same key.
    auto again = quiver::ObjectKey::Parse(key->ToString());
    if (!again.ok() || again->ToString() != key->ToString()) __builtin_trap();
  }
  (void)quiver::ParseKeyPrefix(text);
  (void)quiver::ObjectTicket::Parse(text);
  (void)quiver::ParseVersion(text, "version");
  // A PATH descriptor: segments separated by NUL bytes.
  std::vector<std::string> segments(1);
  for (char c : text) {
    if (c == '\0') {
      segments.emplace_back();
    } else {
      segments.back() += c;
    }
  }
  (void)quiver::ObjectKey::FromSegments(segments);
  return 0;
}
