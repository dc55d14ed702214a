#include "server/http_server.h"

#include <chrono>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "server/audit_log.h"
#include "server/dashboard_assets.h"
#include "server/http_api.h"
#include "server/http_auth.h"
#include "server/http_body.h"
#include "server/http_errors.h"
#include "server/http_observation.h"
#include "server/metrics.h"
#include "server/request_log.h"

namespace quiver {

namespace {

// A request's start time, kept per worker thread between routing and the log line.
thread_local std::chrono::steady_clock::time_point request_start;

}  // namespace

HttpServer::HttpServer(HttpServerOptions options) : options_(std::move(options)) {}

HttpServer::~HttpServer() { Stop(); }

std::string HttpServer::url() const {
  const bool tls = !options_.config.tls_cert.empty();
  std::string host = options_.host.find(':') != std::string::npos ? "[" + options_.host + "]"
                                                                    : options_.host;
  return std::string(tls ? "https://" : "http://") + host + ":" + std::to_string(port_);
}

arrow::Result<std::unique_ptr<HttpServer>> HttpServer::Listen(HttpServerOptions options) {
  if (options.config.tls_cert.empty() != options.config.tls_key.empty()) {
    return arrow::Status::Invalid("http: TLS needs both tls_cert and tls_key");
  }
  if (options.config.threads < 1) return arrow::Status::Invalid("http.threads must be >= 1");
  std::unique_ptr<HttpServer> self(new HttpServer(options));
  ARROW_RETURN_NOT_OK(self->MakeServer());
  self->InstallHooks();
  self->AddRoutes();
  httplib::Server& server = *self->server_;
  HttpServer* raw = self.get();
  self->port_ = options.port == 0 ? server.bind_to_any_port(options.host)
                                  : (server.bind_to_port(options.host, options.port)
                                         ? options.port
                                         : -1);
  if (self->port_ <= 0) {
    return arrow::Status::IOError("http: cannot listen on ", options.host, ":", options.port,
                                  " (address in use, or not a local address)");
  }
  self->thread_ = std::thread([raw] { raw->server_->listen_after_bind(); });
  return self;
}

TlsFiles HttpServer::tls_files() const {
  TlsFiles files;
  files.cert = options_.config.tls_cert;
  files.key = options_.config.tls_key;
  files.client_ca = options_.config.tls_client_ca;
  // Unset, they default to the Flight port's (tls.*).
  files.cert_field = "http.tls_cert (--http-tls-cert, or tls.cert)";
  files.key_field = "http.tls_key (--http-tls-key, or tls.key)";
  files.ca_field = "http.tls_client_ca (or tls.client_ca)";
  return files;
}

arrow::Status HttpServer::MakeServer() {
  if (options_.config.tls_cert.empty()) {
    server_ = std::make_unique<httplib::Server>();
  } else {
    ARROW_ASSIGN_OR_RAISE(auto material, TlsMaterial::Load(tls_files()));
    tls_ = std::make_unique<ReloadableTlsContext>(std::move(material));
    ReloadableTlsContext* tls = tls_.get();
    auto server = std::make_unique<httplib::SSLServer>([tls](SSL_CTX& ctx) {
      tls->Install(&ctx);
      return true;
    });
    if (!server->is_valid()) return arrow::Status::IOError("http: cannot create a TLS context");
    server_ = std::move(server);
  }
  httplib::Server& server = *server_;
  const int threads = static_cast<int>(options_.config.threads);
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  auto seconds = [](double s) {
    return std::chrono::microseconds(static_cast<int64_t>(s * 1e6));
  };
  server.set_read_timeout(seconds(options_.config.read_timeout_s));
  server.set_write_timeout(seconds(options_.config.write_timeout_s));
  server.set_keep_alive_timeout(static_cast<time_t>(std::max(1.0, options_.config.keep_alive_s)));
  server.set_keep_alive_max_count(100000);
  server.set_payload_max_length(static_cast<size_t>(options_.max_body_bytes));
  server.set_tcp_nodelay(true);

  return arrow::Status::OK();
}

void HttpServer::InstallHooks() {
  httplib::Server& server = *server_;
  server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    request_start = std::chrono::steady_clock::now();
    ResetStreamedBytesOnThisThread();
    // A client's X-Request-Id is kept when it is short and plain (the same rule as Flight's).
    auto id = req.get_header_value("X-Request-Id");
    res.set_header("X-Request-Id", IsSaneRequestId(id) ? id : NewRequestId());
    if (!Admit(req, res)) return httplib::Server::HandlerResponse::Handled;
    if (!started_ && req.path != "/healthz") {
      SendError(res, 503, "unavailable", "quiver is starting (rebuilding its index); retry shortly");
      res.set_header("Retry-After", "1");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || res.content_provider_) return;  // a handler's own answer
    if (res.status == 404) {
      SendError(res, 404, "not_found", "no route " + req.method + " " + req.path +
                                           " (see docs/http.md)");
    } else {
      SendError(res, res.status, "http_error", "HTTP " + std::to_string(res.status));
    }
  });
  server.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr e) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          what = ex.what();
        } catch (...) {
        }
        spdlog::error("HTTP {} {}: {}", req.method, req.path, what);
        SendError(res, 500, "internal", what);
      });
  // Called once the response is sent: metrics and the request log (docs/observability.md).
  server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    LogExchange(req, res);
  });
}

bool HttpServer::Admit(const httplib::Request& req, httplib::Response& res) {
  SetHttpCaller(nullptr);
  const Authenticator* auth = options_.auth;
  if (auth == nullptr || !auth->enabled()) return true;
  const auto role = HttpRequiredRole(req.method, req.path);
  if (!role) return true;
  auto who = auth->Authenticate(req.get_header_value("Authorization"));
  arrow::Status st = who.status();
  if (st.ok()) {
    SetHttpCaller(*who);  // known from here on, also to the logs of a refusal below
    st = auth->Throttle(**who);
    if (st.ok()) st = RequireRole(**who, *role, HttpRouteWhat(req.method, req.path));
  }
  if (!st.ok()) {
    SendError(res, st);
    if (res.status == 401) res.set_header("WWW-Authenticate", R"(Bearer realm="quiver")");
    return false;
  }
  return true;
}

void HttpServer::LogExchange(const httplib::Request& req, const httplib::Response& res) {
  auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                      request_start)
                .count();
  HttpExchange x;
  x.method = req.method;
  x.path = req.path;
  x.status = res.status;
  const std::string cache = res.get_header_value("X-Quiver-Cache");
  const std::string joined = res.get_header_value("X-Quiver-Joined");
  const std::string key = res.get_header_value("X-Quiver-Key");
  x.cache = cache;
  x.joined = joined;
  x.key = key;
  const HttpObservation o = ObserveHttp(x);
  // A body set whole, or the bytes of a streamed (chunked) one this thread wrote.
  const int64_t bytes = req.method == "HEAD" ? 0
                        : res.body.empty()  ? StreamedBytesOnThisThread()
                                            : static_cast<int64_t>(res.body.size());
  if (auto* metrics = options_.metrics) {
    metrics->ObserveRequest("http", o.kind, o.outcome, o.code, ms / 1000, bytes);
  }
  if (auto* log = options_.request_log) {
    RequestRecord r;
    r.request_id = res.get_header_value("X-Request-Id");
    r.interface = "http";
    r.kind = o.kind;
    r.key = o.key;
    r.code = o.code;
    r.outcome = o.outcome;
    r.peer = req.remote_addr + ":" + std::to_string(req.remote_port);
    const Identity* who = HttpCallerIfSet();
    if (who == nullptr && (options_.auth == nullptr || !options_.auth->enabled())) {
      who = Identity::Anonymous().get();
    }
    if (who) {
      r.identity = who->name;
      r.tenant = who->tenant;
    }
    r.audited = IsAuditedKind(o.kind);
    r.duration_ms = ms;
    r.bytes = bytes;
    log->Write(r);
  }
}

void HttpServer::AddRoutes() {
  httplib::Server& server = *server_;
  // Routes. Handlers reach the API once started (the pre-routing handler answers before).
  auto api = [this]() { return api_.get(); };
  const std::string object = R"(/v1/objects/(.+))";
  server.Get(object, [api](const httplib::Request& q, httplib::Response& r) {
    api()->GetObject(q, r);
  });
  server.Put(object, [api](const httplib::Request& q, httplib::Response& r,
                           const httplib::ContentReader& body) { api()->PutObject(q, r, body); });
  server.Delete(object, [api](const httplib::Request& q, httplib::Response& r) {
    api()->DeleteObject(q, r);
  });
  server.Post("/v1/query", [api](const httplib::Request& q, httplib::Response& r) {
    api()->Query(q, r);
  });
  server.Get(R"(/v1/results/([0-9a-f]{64}))", [api](const httplib::Request& q,
                                                    httplib::Response& r) {
    api()->GetResult(q, r);
  });
  server.Get("/v1/entries", [api](const httplib::Request& q, httplib::Response& r) {
    api()->Entries(q, r);
  });
  server.Get("/v1/stats", [api](const httplib::Request& q, httplib::Response& r) {
    api()->Stats(q, r);
  });
  server.Post(R"(/v1/actions/([A-Za-z0-9_-]+))",
              [api](const httplib::Request& q, httplib::Response& r) { api()->Action(q, r); });
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& r) {
    r.set_content(R"({"status":"ok"})", kJsonType);
  });
  server.Get("/readyz", [api](const httplib::Request& q, httplib::Response& r) {
    api()->Ready(q, r);
  });
  // The dashboard (web/dist, compiled in): "/" and "/assets/...". Route patterns are regexes,
  // so the dots of file names are escaped. no-cache: a new binary's page is picked up at once.
  for (const DashboardAsset& asset : DashboardAssets()) {
    std::string pattern;
    for (char c : asset.path) {
      if (c == '.') pattern += '\\';
      pattern += c;
    }
    server.Get(pattern, [&asset](const httplib::Request&, httplib::Response& r) {
      r.set_header("Cache-Control", "no-cache");
      r.set_content(asset.body.data(), asset.body.size(), std::string(asset.content_type));
    });
  }
  if (Metrics* metrics = options_.metrics) {
    server.Get("/metrics", [this, metrics](const httplib::Request&, httplib::Response& r) {
      r.set_content(metrics->Render(engine_), std::string(Metrics::kContentType));
    });
  }
}

void HttpServer::Start(Engine* engine, std::string flight_endpoint) {
  api_ = std::make_unique<HttpApi>(engine, std::move(flight_endpoint));
  engine_ = engine;
  started_ = true;
}

arrow::Result<TlsReload> HttpServer::ReloadTls() {
  if (tls_ == nullptr) return TlsReload::kNoTls;
  ARROW_ASSIGN_OR_RAISE(auto next, TlsMaterial::Load(tls_files()));
  if (next->SameAs(*tls_->current())) return TlsReload::kUnchanged;
  tls_->Replace(std::move(next));
  return TlsReload::kReloaded;
}

void HttpServer::Stop() {
  if (!server_) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace quiver
