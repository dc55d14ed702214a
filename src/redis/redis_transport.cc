// The two transports under a Connection: a plain non-blocking TCP socket, and an OpenSSL
// session on one. Every wait is a poll() with a deadline, so no call blocks longer than
// the caller's timeout.
#include "redis/redis_transport.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <string>

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace quiver::redis::internal {

namespace {

using Clock = std::chrono::steady_clock;

std::string ErrnoText(int err) {
  std::string text = std::strerror(err);
  // "Connection refused" reads better as "redis host:port: connection refused".
  if (text.size() > 1 && std::isupper(static_cast<unsigned char>(text[0])) &&
      !std::isupper(static_cast<unsigned char>(text[1]))) {
    text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  }
  return text;
}

// poll() one descriptor until `deadline`: its revents, 0 on timeout, -1 on error (errno).
int PollOne(int fd, short events, Clock::time_point deadline) {
  while (true) {
    auto remaining = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    int timeout_ms = static_cast<int>(std::clamp<int64_t>(remaining.count(), 0, 1 << 30));
    pollfd pfd{fd, events, 0};
    int rc = ::poll(&pfd, 1, timeout_ms);
    if (rc > 0) return pfd.revents;
    if (rc == 0) return 0;
    if (errno != EINTR) return -1;
  }
}

class SocketTransport final : public Transport {
 public:
  explicit SocketTransport(int fd) : fd_(fd) {}
  ~SocketTransport() override { ::close(fd_); }

  arrow::Result<size_t> Write(std::string_view data,
                              std::chrono::milliseconds timeout) override {
    size_t written = 0;
    while (written < data.size()) {
      // MSG_NOSIGNAL: a peer that went away is an EPIPE here, not a SIGPIPE that kills us.
      ssize_t n = ::send(fd_, data.data() + written, data.size() - written, MSG_NOSIGNAL);
      if (n > 0) {
        written += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        int events = PollOne(fd_, POLLOUT, Clock::now() + timeout);
        if (events == 0) return written;
        if (events < 0) return arrow::Status::IOError("poll: ", ErrnoText(errno));
        continue;  // writable, or an error that the next send() reports
      }
      return arrow::Status::IOError("write: ", ErrnoText(errno));
    }
    return written;
  }

  arrow::Result<size_t> Read(char* buffer, size_t size,
                             std::chrono::milliseconds timeout) override {
    auto deadline = Clock::now() + timeout;
    while (true) {
      ssize_t n = ::recv(fd_, buffer, size, 0);
      if (n > 0) return static_cast<size_t>(n);
      if (n == 0) return arrow::Status::IOError("connection closed by the server");
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return arrow::Status::IOError("read: ", ErrnoText(errno));
      }
      int events = PollOne(fd_, POLLIN, deadline);
      if (events == 0) return 0;
      if (events < 0) return arrow::Status::IOError("poll: ", ErrnoText(errno));
    }
  }

  bool IdleAndAlive() override {
    if (PollOne(fd_, POLLIN, Clock::now()) == 0) return true;
    char byte;
    ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

 private:
  int fd_;
};

// OpenSSL writes to the socket with write(), so a peer that went away raises SIGPIPE, which
// kills a process that did not ignore it. A library must not change process-wide signal
// handling, so SIGPIPE is blocked in this thread for the duration of the call, and one it
// raised is consumed before unblocking.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigset_t pending;
    sigemptyset(&pending);
    ::sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &block, &old_mask_);
  }
  ~ScopedSigpipeBlock() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      ::sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        sigset_t pipe_only;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        timespec zero{};
        while (::sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
        }
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  sigset_t old_mask_;
  bool was_pending_ = false;
};

// The reason of the oldest queued OpenSSL error, e.g. "certificate verify failed".
std::string SslErrorText() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown TLS error";
#ifdef ERR_SYSTEM_ERROR
  // A failed fopen() of the CA file, say: the errno says it best.
  if (ERR_SYSTEM_ERROR(code)) return ErrnoText(static_cast<int>(ERR_GET_REASON(code)));
#endif
  const char* reason = ERR_reason_error_string(code);
  if (reason != nullptr) return reason;
  char buffer[256];
  ERR_error_string_n(code, buffer, sizeof(buffer));
  return buffer;
}

// What to do after an SSL_* call returned `rc` <= 0.
enum class SslStep { kWaitRead, kWaitWrite, kFailed };

SslStep ClassifySslResult(SSL* ssl, int rc, std::string* error) {
  int saved_errno = errno;
  switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
      return SslStep::kWaitRead;
    case SSL_ERROR_WANT_WRITE:
      return SslStep::kWaitWrite;
    case SSL_ERROR_ZERO_RETURN:
      *error = "connection closed by the server";
      return SslStep::kFailed;
    case SSL_ERROR_SYSCALL:
      if (ERR_peek_error() != 0) {
        *error = SslErrorText();
      } else {
        *error = saved_errno == 0 ? "connection closed by the server" : ErrnoText(saved_errno);
      }
      return SslStep::kFailed;
    default:
      *error = SslErrorText();
      return SslStep::kFailed;
  }
}

// Owns the socket and the SSL session; the session holds its own reference to the shared
// SSL_CTX.
class TlsTransport final : public Transport {
 public:
  TlsTransport(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
  ~TlsTransport() override {
    if (handshake_done_ && !failed_) {
      // Best effort close_notify; never waits. (Not after a fatal error: OpenSSL forbids it.)
      ScopedSigpipeBlock no_sigpipe;
      ERR_clear_error();
      SSL_shutdown(ssl_);
      ERR_clear_error();
    }
    SSL_free(ssl_);
    ::close(fd_);
  }

  arrow::Status Handshake(Clock::time_point deadline, std::chrono::milliseconds budget) {
    ScopedSigpipeBlock no_sigpipe;
    while (true) {
      ERR_clear_error();
      int rc = SSL_connect(ssl_);
      if (rc == 1) break;
      std::string error;
      SslStep step = ClassifySslResult(ssl_, rc, &error);
      if (step == SslStep::kFailed) {
        long verify = SSL_get_verify_result(ssl_);
        if (verify != X509_V_OK) {
          return arrow::Status::IOError("TLS handshake failed: certificate verify failed (",
                                        X509_verify_cert_error_string(verify), ")");
        }
        return arrow::Status::IOError("TLS handshake failed: ", error);
      }
      int events = PollOne(fd_, step == SslStep::kWaitRead ? POLLIN : POLLOUT, deadline);
      if (events == 0) {
        return arrow::Status::IOError(
            fmt::format("TLS handshake not done within {} ms", budget.count()));
      }
      if (events < 0) return arrow::Status::IOError("poll: ", ErrnoText(errno));
    }
    handshake_done_ = true;
    return arrow::Status::OK();
  }

  arrow::Result<size_t> Write(std::string_view data,
                              std::chrono::milliseconds timeout) override {
    ScopedSigpipeBlock no_sigpipe;
    size_t written = 0;
    while (written < data.size()) {
      ERR_clear_error();
      // After WANT_*, OpenSSL requires the same buffer again: `written` only advances on
      // success.
      int n = SSL_write(ssl_, data.data() + written,
                        static_cast<int>(std::min<size_t>(data.size() - written, 1 << 30)));
      if (n > 0) {
        written += static_cast<size_t>(n);
        continue;
      }
      std::string error;
      SslStep step = ClassifySslResult(ssl_, n, &error);
      if (step == SslStep::kFailed) {
        failed_ = true;
        return arrow::Status::IOError("write: ", error);
      }
      int events = PollOne(fd_, step == SslStep::kWaitRead ? POLLIN : POLLOUT,
                           Clock::now() + timeout);
      if (events == 0) return written;
      if (events < 0) return arrow::Status::IOError("poll: ", ErrnoText(errno));
    }
    return written;
  }

  arrow::Result<size_t> Read(char* buffer, size_t size,
                             std::chrono::milliseconds timeout) override {
    auto deadline = Clock::now() + timeout;
    // SSL_read comes before any poll: OpenSSL may already hold decrypted bytes (SSL_pending)
    // that no poll() on the socket would announce.
    ScopedSigpipeBlock no_sigpipe;  // a read can write too (key update, alerts)
    while (true) {
      ERR_clear_error();
      int n = SSL_read(ssl_, buffer, static_cast<int>(std::min<size_t>(size, 1 << 30)));
      if (n > 0) return static_cast<size_t>(n);
      std::string error;
      SslStep step = ClassifySslResult(ssl_, n, &error);
      if (step == SslStep::kFailed) {
        failed_ = true;
        return arrow::Status::IOError("read: ", error);
      }
      int events = PollOne(fd_, step == SslStep::kWaitRead ? POLLIN : POLLOUT, deadline);
      if (events == 0) return 0;
      if (events < 0) return arrow::Status::IOError("poll: ", ErrnoText(errno));
    }
  }

  bool IdleAndAlive() override {
    if (SSL_pending(ssl_) > 0) return false;  // bytes nobody asked for
    if (PollOne(fd_, POLLIN, Clock::now()) == 0) return true;
    // Readable while idle is not necessarily dead: TLS 1.3 servers send session tickets
    // after the handshake. SSL_peek consumes such records and reports application data,
    // EOF or an error only if there is one.
    ScopedSigpipeBlock no_sigpipe;
    ERR_clear_error();
    char byte;
    int n = SSL_peek(ssl_, &byte, 1);
    if (n > 0) return false;
    std::string error;
    SslStep step = ClassifySslResult(ssl_, n, &error);
    if (step == SslStep::kWaitRead) return true;
    // Dropped either way; a fatal error also rules out the close_notify in the destructor.
    failed_ = step == SslStep::kFailed;
    return false;
  }

 private:
  int fd_;
  SSL* ssl_;
  bool handshake_done_ = false;
  bool failed_ = false;
};

// Waits for a non-blocking connect() to finish; returns 0 or the errno it failed with.
int FinishConnect(int fd, Clock::time_point deadline) {
  int events = PollOne(fd, POLLOUT, deadline);
  if (events == 0) return ETIMEDOUT;
  if (events < 0) return errno;
  int err = 0;
  socklen_t len = sizeof(err);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

arrow::Result<int> ConnectSocket(const ConnectOptions& options, Clock::time_point deadline) {
  const RedisUrl& url = options.url;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  addrinfo* addresses = nullptr;
  std::string service = std::to_string(url.port);
  // getaddrinfo has no timeout: a slow resolver can exceed connect_timeout.
  int rc = ::getaddrinfo(url.host.c_str(), service.c_str(), &hints, &addresses);
  if (rc != 0) {
    return arrow::Status::IOError("cannot resolve '", url.host, "': ",
                                  rc == EAI_SYSTEM ? ErrnoText(errno) : gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(addresses, &::freeaddrinfo);

  int last_error = EHOSTUNREACH;
  for (addrinfo* ai = addresses; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                      ai->ai_protocol);
    if (fd < 0) {
      last_error = errno;
      continue;
    }
    int err = 0;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno == EINPROGRESS ? FinishConnect(fd, deadline) : errno;
    }
    if (err == 0) {
      int one = 1;
      // Requests are small and answered at once; Nagle would hold pipelined writes back.
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      // Lets a long-lived subscriber eventually notice a peer that vanished silently.
      ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
      return fd;
    }
    ::close(fd);
    last_error = err;
    if (Clock::now() >= deadline) break;
  }
  if (last_error == ETIMEDOUT) {
    return arrow::Status::IOError(
        fmt::format("could not connect within {} ms", options.connect_timeout.count()));
  }
  return arrow::Status::IOError(ErrnoText(last_error));
}

arrow::Result<std::unique_ptr<Transport>> ConnectTls(int fd, const ConnectOptions& options,
                                                     const TlsContext& tls,
                                                     Clock::time_point deadline) {
  SSL* ssl = SSL_new(tls.get());
  if (ssl == nullptr) {
    ::close(fd);
    return arrow::Status::IOError("TLS setup failed: ", SslErrorText());
  }
  auto transport = std::make_unique<TlsTransport>(fd, ssl);  // owns fd and ssl now

  const std::string& host = options.url.host;
  in6_addr ip6;
  in_addr ip4;
  bool is_ip = ::inet_pton(AF_INET, host.c_str(), &ip4) == 1 ||
               ::inet_pton(AF_INET6, host.c_str(), &ip6) == 1;
  bool ok = SSL_set_fd(ssl, fd) == 1;
  if (is_ip) {
    // An IP address must match an IP entry of subjectAltName; it is not sent as SNI.
    ok = ok && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) == 1;
  } else {
    ok = ok && SSL_set_tlsext_host_name(ssl, host.c_str()) == 1 &&
         SSL_set1_host(ssl, host.c_str()) == 1;
  }
  if (!ok) return arrow::Status::IOError("TLS setup failed: ", SslErrorText());
  ARROW_RETURN_NOT_OK(transport->Handshake(deadline, options.connect_timeout));
  return transport;
}

}  // namespace

arrow::Result<std::unique_ptr<TlsContext>> TlsContext::Make(const ConnectOptions& options) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return arrow::Status::IOError("TLS setup failed: ", SslErrorText());
  std::unique_ptr<TlsContext> context(new TlsContext(ctx));  // frees ctx from here on
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  // Lets SSL_write return after each record, so a write's timeout measures progress.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
  if (options.ca_file.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return arrow::Status::IOError("TLS setup failed: ", SslErrorText());
    }
  } else if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1) {
    return arrow::Status::IOError("cannot load CA file '", options.ca_file,
                                  "': ", SslErrorText());
  }
  return context;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

arrow::Result<std::unique_ptr<Transport>> ConnectTransport(const ConnectOptions& options,
                                                           const TlsContext* tls) {
  if (options.url.tls && tls == nullptr) {
    return arrow::Status::Invalid("redis: a rediss connection without a TLS context");
  }
  auto deadline = Clock::now() + options.connect_timeout;
  ARROW_ASSIGN_OR_RAISE(int fd, ConnectSocket(options, deadline));
  if (options.url.tls) return ConnectTls(fd, options, *tls, deadline);
  return std::make_unique<SocketTransport>(fd);
}

std::string ServerName(const RedisUrl& url) { return "redis " + url.HostPort(); }

}  // namespace quiver::redis::internal
