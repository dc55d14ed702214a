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

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace quiver::redis::internal {

/// \brief A connected, non-blocking byte stream with timeouts.
///
/// Errors are IOErrors whose message says only what went wrong ("connection refused"); the
/// Connection prefixes the server's name and attaches the unavailable detail.
class Transport {
 public:
  virtual ~Transport() = default;

  /// \brief Write `data`; returns how much was written: all of it, or less when the socket
  /// accepted nothing for `timeout` (a timeout is not an error here, as for Read).
  virtual arrow::Result<size_t> Write(std::string_view data,
                                      std::chrono::milliseconds timeout) = 0;
  /// \brief Read between 1 and `size` bytes; 0 when nothing arrived within `timeout`.
  /// End of stream is an error. Bytes already decrypted by TLS are returned without waiting.
  virtual arrow::Result<size_t> Read(char* buffer, size_t size,
                                     std::chrono::milliseconds timeout) = 0;
  /// \brief For a connection that sat idle: true unless the peer closed it, it has an error
  /// pending, or unexpected bytes arrived. Does not block.
  virtual bool IdleAndAlive() = 0;
};

/// \brief An OpenSSL client context for one server's connections: TLS 1.2 or later, the
/// server's certificate verified against options.ca_file (or the system's CAs). Made once per
/// Connector and shared by its connections: OpenSSL allows SSL_new() on one context from many
/// threads, and counts the references each SSL holds, so connections may outlive this object.
class TlsContext {
 public:
  static arrow::Result<std::unique_ptr<TlsContext>> Make(const ConnectOptions& options);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  ssl_ctx_st* get() const { return ctx_; }

 private:
  explicit TlsContext(ssl_ctx_st* ctx) : ctx_(ctx) {}
  ssl_ctx_st* ctx_;
};

/// \brief Resolve the host, connect within options.connect_timeout (trying each address in
/// turn), set TCP_NODELAY and, for rediss, complete a verified TLS handshake with `tls` in the
/// same time. REQUIRES: `tls` is not null for rediss.
arrow::Result<std::unique_ptr<Transport>> ConnectTransport(const ConnectOptions& options,
                                                           const TlsContext* tls);

/// \brief How messages name the server: "redis 127.0.0.1:6379" (never a password).
std::string ServerName(const RedisUrl& url);

}  // namespace quiver::redis::internal
