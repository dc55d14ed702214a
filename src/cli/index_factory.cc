#include "cli/index_factory.h"

#include <spdlog/spdlog.h>

#include "index/embedded_index.h"
#include "index/redis_index.h"

namespace quiver {

arrow::Result<std::shared_ptr<Index>> OpenIndex(const ServerConfig& config,
                                                const std::string& node) {
  if (!config.shared_index()) return std::make_shared<EmbeddedIndex>();
  auto url = redis::RedisUrl::Parse(config.index);
  if (!url.ok()) return arrow::Status::Invalid("--index: ", url.status().message());
  RedisIndexOptions options;
  options.connect.url = *url;
  options.connect.ca_file = config.index_ca;
  const auto timeout =
      std::chrono::milliseconds(static_cast<int64_t>(config.index_timeout_s * 1000));
  options.connect.connect_timeout = timeout;
  options.connect.io_timeout = timeout;
  options.prefix = config.index_prefix;
  options.node = node;
  if (!url->tls && !config.index_ca.empty()) {
    spdlog::warn("--index-ca is ignored: {} does not use TLS (rediss://)", url->Redacted());
  }
  auto index = RedisIndex::Open(options);
  if (!index.ok()) {
    return arrow::Status::Invalid("index ", url->Redacted(), ": ", index.status().message());
  }
  return std::shared_ptr<Index>(*index);
}

}  // namespace quiver
