#include "cli/index_factory.h"

#include "index/embedded_index.h"

namespace quiver {

arrow::Result<std::shared_ptr<Index>> OpenIndex(const ServerConfig& config,
                                                const std::string& node) {
  if (!config.shared_index()) return std::make_shared<EmbeddedIndex>();
  return arrow::Status::NotImplemented("shared index not built yet");
}

}  // namespace quiver
