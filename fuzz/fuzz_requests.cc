// The JSON requests clients send: query and artifact commands (DoGet tickets, CMD
// descriptors, POST /v1/query bodies) and view tickets.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/artifact_request.h"
#include "server/query_request.h"
#include "server/view_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)quiver::ParseQueryRequest(text);
  (void)quiver::ParseArtifactRequest(text);
  if (quiver::LooksLikeView(text)) (void)quiver::ParseViewRequest(text);
  return 0;
}
