#include "cli/server_option.h"

#include <cstdlib>

namespace quiver {

std::string ServerLocation(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("QUIVER_SERVER");
  return env && *env ? env : "grpc://127.0.0.1:8815";
}

}  // namespace quiver
