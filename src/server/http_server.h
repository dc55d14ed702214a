// HttpServer: Quiver's HTTP/1.1 interface (docs/http.md) -- the same engine, keys and
// guarantees as Flight, for browsers and web backends.
//
// Transport is Debian's cpp-httplib: a fixed pool of worker threads, one connection at a time
// each, kept alive between requests; responses stream with chunked transfer encoding; TLS with
// a certificate and key file, re-read by ReloadTls (SIGHUP) without closing the port. A slow reader holds its worker until the write timeout ends the
// connection, never an engine lock (http_body.h). The routes are HttpApi's (http_api.h).
//
// The server listens before the engine is open (so it can announce its port); until Start()
// every request is answered 503 "starting".
//
// Thread-safety: Start() and Stop() may be called from any thread, once each.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include <arrow/result.h>

#include "cache/engine.h"
#include "common/http_config.h"
#include "server/auth.h"
#include "server/tls_material.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}

namespace quiver {

class HttpApi;
class Metrics;
class RequestLog;

struct HttpServerOptions {
  /// The `http` settings (TLS files, worker threads, timeouts); its `listen` is parsed into
  /// host and port below.
  HttpConfig config;
  std::string host = "127.0.0.1";
  /// 0: a free port.
  int port = 0;
  /// Largest request body (a PUT) accepted, bytes. Default: 4 GiB.
  int64_t max_body_bytes = int64_t{4} << 30;
  /// Every request is counted here and served on GET /metrics (null: /metrics is 404), and
  /// logged there (docs/observability.md). Both must outlive the server.
  Metrics* metrics = nullptr;
  const RequestLog* request_log = nullptr;
  /// Who may call (docs/security.md); null: everyone may do everything. Must outlive the
  /// server.
  const Authenticator* auth = nullptr;
};

class HttpServer {
 public:
  /// \brief Bind and start accepting (answering 503 until Start()).
  static arrow::Result<std::unique_ptr<HttpServer>> Listen(HttpServerOptions options);
  ~HttpServer();

  int port() const { return port_; }
  /// \brief Whether it serves HTTPS.
  bool tls() const { return tls_ != nullptr; }
  /// \brief "http://HOST:PORT" or "https://HOST:PORT".
  std::string url() const;

  /// \brief Serve `engine`; `flight_endpoint` is what ObjectRefs name.
  void Start(Engine* engine, std::string flight_endpoint);
  /// \brief Stop accepting and close connections; waits for the accept loop.
  void Stop();

  /// \brief Read the TLS files again: if they changed, new connections get the new
  /// certificate (and client CA) and open ones keep theirs. An error (a file that does not
  /// load) leaves the certificate in force.
  arrow::Result<TlsReload> ReloadTls();

 private:
  explicit HttpServer(HttpServerOptions options);
  /// The httplib server, plain or TLS, with the options' limits and timeouts.
  arrow::Status MakeServer();
  /// The start guard, error and exception answers, and the per-request log.
  void InstallHooks();
  // Authenticate and authorize a request (options_.auth); false: refused, answered in `res`.
  bool Admit(const httplib::Request& req, httplib::Response& res);
  /// Metrics and the request log line of one answered request.
  void LogExchange(const httplib::Request& req, const httplib::Response& res);
  /// The API's routes, health, metrics and the dashboard's assets.
  void AddRoutes();

  /// The TLS files of options_.config, with their names in errors.
  TlsFiles tls_files() const;

  HttpServerOptions options_;
  std::unique_ptr<ReloadableTlsContext> tls_;  // null: plain HTTP; outlives server_
  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<HttpApi> api_;
  Engine* engine_ = nullptr;  // for /metrics
  std::atomic<bool> started_{false};
  int port_ = 0;
  std::thread thread_;
};

}  // namespace quiver
