// Internal to quiver_redis: the byte stream under a Connection, a plain TCP socket or an
// OpenSSL session on one. hiredis 0.14 cannot do TLS, so Quiver moves the bytes itself and
// hiredis only encodes and parses them.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <arrow/result.h>
#include <arrow/status.h>

#include "redis/redis_client.h"

namespace quiver::redis::internal {

/// \brief A connected, non-blocking byte stream with timeouts.
///
/// Errors are IOErrors whose message says only what went wrong ("connection refused"); the
/// Connection prefixes the server's name and attaches the unavailable detail.
class Transport {
 public:
  virtual ~Transport() = default;

  /// \brief Write all of `data`. Fails if the socket accepts nothing for `timeout`.
  virtual arrow::Status Write(std::string_view data, std::chrono::milliseconds timeout) = 0;
  /// \brief Read between 1 and `size` bytes; 0 when nothing arrived within `timeout`.
  /// End of stream is an error. Bytes already decrypted by TLS are returned without waiting.
  virtual arrow::Result<size_t> Read(char* buffer, size_t size,
                                     std::chrono::milliseconds timeout) = 0;
  /// \brief For a connection that sat idle: true unless the peer closed it, it has an error
  /// pending, or unexpected bytes arrived. Does not block.
  virtual bool IdleAndAlive() = 0;
};

/// \brief Resolve the host, connect within options.connect_timeout (trying each address in
/// turn), set TCP_NODELAY and, for rediss, complete a verified TLS handshake in the same time.
arrow::Result<std::unique_ptr<Transport>> ConnectTransport(const ConnectOptions& options);

/// \brief How messages name the server: "redis 127.0.0.1:6379" (never a password).
std::string ServerName(const RedisUrl& url);

}  // namespace quiver::redis::internal
