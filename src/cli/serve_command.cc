#include "cli/serve_command.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <thread>

#include <arrow/flight/server.h>
#include <arrow/flight/server_auth.h>
#include <spdlog/spdlog.h>

#include "cache/engine.h"
#include "cli/flight_port.h"
#include "cli/index_factory.h"
#include "cli/serve_security.h"
#include "cli/serve_signals.h"
#include "cli/store_factory.h"
#include "common/config.h"
#include "exec/adbc_source.h"
#include "exec/artifact_source.h"
#include "server/audit_log.h"
#include "server/auth.h"
#include "server/flight_auth.h"
#include "server/flight_middleware.h"
#include "server/flight_peer_client.h"
#include "server/flight_service.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/request_log.h"
#include "server/timed_source.h"

namespace quiver {

namespace {

struct ServeFlags {
  std::string config_file;
  std::string listen;
  std::string data_dir;
  std::string max_object_bytes;
  int64_t keep_versions = 0;
  std::string log_level;
  std::string log_format;
  bool no_verify = false;
  bool rebuild_index = false;
  std::vector<std::string> sources;
  std::string max_entry_bytes;
  std::string cache_size;
  std::string memory_size;
  std::string eviction_policy;
  double half_life = 0;
  std::string index;
  std::string index_ca;
  std::string index_prefix;
  std::string node_id;
  std::string advertise;
  std::string public_endpoint;
  std::string store;
  std::string s3_region;
  std::string s3_endpoint;
  std::string s3_ca_file;
  std::string disk_tier_size;
  bool no_disk_tier = false;
  std::string durability;
  int64_t sync_interval_ms = 0;
  std::string http;
  std::string http_tls_cert;
  std::string http_tls_key;
  std::string auth;
  std::string tokens_file;
  bool allow_unauthenticated = false;
  std::string audit_log;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
};

// 10% of the filesystem holding `dir` (the default disk budget).
arrow::Result<int64_t> DefaultCacheSize(const std::string& dir) {
  struct statvfs fs;
  if (::statvfs(dir.c_str(), &fs) != 0) {
    return arrow::Status::IOError("statvfs '", dir, "': ", std::strerror(errno));
  }
  return static_cast<int64_t>(fs.f_blocks) * static_cast<int64_t>(fs.f_frsize) / 10;
}

arrow::Status ApplySizes(const ServeFlags& flags, ServerConfig* config) {
  if (!flags.max_object_bytes.empty()) {
    ARROW_ASSIGN_OR_RAISE(config->max_object_bytes, ParseByteSize(flags.max_object_bytes));
  }
  if (!flags.max_entry_bytes.empty()) {
    ARROW_ASSIGN_OR_RAISE(config->max_entry_bytes, ParseByteSize(flags.max_entry_bytes));
  }
  if (!flags.cache_size.empty()) {
    ARROW_ASSIGN_OR_RAISE(config->cache_size, ParseByteSize(flags.cache_size));
  }
  if (!flags.memory_size.empty()) {
    ARROW_ASSIGN_OR_RAISE(config->memory_size, ParseByteSize(flags.memory_size));
  }
  if (!flags.disk_tier_size.empty()) {
    ARROW_ASSIGN_OR_RAISE(config->disk_tier_size, ParseByteSize(flags.disk_tier_size));
  }
  return arrow::Status::OK();
}

// Defaults, then the config file, then the flags.
arrow::Result<ServerConfig> LoadConfig(const ServeFlags& flags) {
  ServerConfig config;
  if (!flags.config_file.empty()) ARROW_RETURN_NOT_OK(config.LoadFile(flags.config_file));
  auto set = [](std::string* field, const std::string& flag) {
    if (!flag.empty()) *field = flag;
  };
  set(&config.listen, flags.listen);
  set(&config.data_dir, flags.data_dir);
  set(&config.http.listen, flags.http);
  set(&config.http.tls_cert, flags.http_tls_cert);
  set(&config.http.tls_key, flags.http_tls_key);
  set(&config.log_level, flags.log_level);
  set(&config.log_format, flags.log_format);
  set(&config.eviction_policy, flags.eviction_policy);
  set(&config.index, flags.index);
  set(&config.index_ca, flags.index_ca);
  set(&config.index_prefix, flags.index_prefix);
  set(&config.node_id, flags.node_id);
  set(&config.advertise, flags.advertise);
  set(&config.public_endpoint, flags.public_endpoint);
  set(&config.store, flags.store);
  set(&config.s3.region, flags.s3_region);
  set(&config.s3.endpoint, flags.s3_endpoint);
  set(&config.s3.ca_file, flags.s3_ca_file);
  set(&config.durability, flags.durability);
  set(&config.auth.mode, flags.auth);
  set(&config.auth.tokens_file, flags.tokens_file);
  set(&config.auth.audit_log, flags.audit_log);
  if (flags.allow_unauthenticated) config.auth.allow_unauthenticated = true;
  set(&config.tls.cert, flags.tls_cert);
  set(&config.tls.key, flags.tls_key);
  set(&config.tls.client_ca, flags.tls_client_ca);
  if (flags.sync_interval_ms > 0) config.sync_interval_ms = flags.sync_interval_ms;
  ARROW_RETURN_NOT_OK(ApplySizes(flags, &config));
  if (flags.keep_versions > 0) config.keep_versions = flags.keep_versions;
  // HTTPS with the Flight port's files unless the http section names its own.
  if (config.http.tls_cert.empty() && config.http.tls_key.empty() && !config.tls.cert.empty() &&
      !config.tls.key.empty()) {
    config.http.tls_cert = config.tls.cert;
    config.http.tls_key = config.tls.key;
    config.http.tls_client_ca = config.tls.client_ca;
  }
  if (flags.no_verify) config.verify_on_startup = false;
  if (flags.rebuild_index) config.rebuild_index = true;
  if (flags.no_disk_tier) config.disk_tier = false;
  if (flags.half_life > 0) config.half_life = flags.half_life;
  for (const auto& flag : flags.sources) {
    ARROW_ASSIGN_OR_RAISE(auto spec, ParseSourceFlag(flag));
    config.sources.push_back(std::move(spec));
  }
  ARROW_RETURN_NOT_OK(config.Validate());
  return config;
}

// Each source reports its executions to `metrics`.
arrow::Result<std::map<std::string, std::shared_ptr<Source>>> OpenSources(
    const ServerConfig& config, Metrics* metrics) {
  std::map<std::string, std::shared_ptr<Source>> sources;
  for (const auto& spec : config.sources) {
    auto source = OpenAdbcSource(spec);
    if (!source.ok()) {
      return arrow::Status::Invalid("cannot open source '", spec.name, "' (", spec.driver, " ",
                                    spec.uri, "): ", source.status().message());
    }
    sources[spec.name] = WithExecutionMetrics(*source, metrics);
    spdlog::info("source {}: {} {} (ttl {} s, {} concurrent, queue {})", spec.name, spec.driver,
                 spec.uri, spec.ttl_s, spec.max_concurrent, spec.max_queue);
  }
  return sources;
}

arrow::Result<std::shared_ptr<ArtifactSource>> OpenArtifacts(const ServerConfig& config) {
  const ArtifactsConfig& a = config.artifacts;
  ArtifactSourceOptions o;
  o.allowed_prefixes = a.allowed_prefixes;
  o.pool.max_workers = a.max_workers;
  o.pool.max_queue = a.max_queue;
  o.timeout_s = a.timeout_s;
  o.default_ttl_s = a.default_ttl_s;
  o.max_bytes = config.max_entry_bytes;
  o.s3 = [config] { return OpenArtifactS3(config); };
  if (a.allowed_prefixes.empty()) {
    spdlog::info("artifacts: none allowed (set artifacts.allowed_prefixes to fetch some)");
  } else {
    std::string list;
    for (const auto& p : a.allowed_prefixes) list += (list.empty() ? "" : ", ") + p;
    spdlog::info("artifacts: from {} ({} workers, queue {}, timeout {} s, ttl {} s)", list,
                 a.max_workers, a.max_queue, a.timeout_s, a.default_ttl_s);
  }
  return ArtifactSource::Make(std::move(o));
}

EngineOptions MakeEngineOptions(const ServerConfig& config) {
  EngineOptions o;
  o.objects.max_object_bytes = config.max_object_bytes;
  o.objects.keep_versions = config.keep_versions;
  o.objects.validate_full_on_put = config.validate_full_on_put;
  o.verify_on_startup = config.verify_on_startup;
  o.budget.cache_size = config.cache_size;
  o.budget.max_entries = config.max_entries;
  o.budget.protect_s = config.protect_s;
  o.budget.policy = config.eviction_policy;
  o.budget.half_life = config.half_life;
  o.budget.tenants = config.auth.tenant_budgets;
  o.memory_size = config.memory_size;
  o.memory_max_entry_bytes = config.memory_max_entry_bytes;
  o.usage_save_interval_s = config.usage_save_interval_s;
  o.max_ttl_s = config.max_ttl_s;
  o.max_entry_bytes = config.max_entry_bytes;
  o.fill_memory_bytes = config.fill_memory_bytes;
  o.reclaim_interval_s = config.reclaim_interval_s;
  o.cancel_unread_fills = config.cancel_unread_fills;
  o.shared.lease_ttl_ms = static_cast<int64_t>(config.lease_ttl_s * 1000);
  o.shared.fill_poll_ms = std::max<int64_t>(1, static_cast<int64_t>(config.fill_poll_s * 1000));
  o.shared.live_join = config.live_join;
  o.shared.fail_open = config.shared_failure == "open";
  o.shared.garbage_grace_s = config.garbage_grace_s;
  o.shared.sweep_interval_s = config.sweep_interval_s;
  return o;
}

std::string DefaultNodeId(int port) {
  char host[256] = {0};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "quiver");
  return std::string(host) + ":" + std::to_string(port);
}

// `peers` learns the client of the other nodes (shared mode), so a reload can give it new
// TLS files.
arrow::Result<std::unique_ptr<Engine>> OpenEngine(const ServerConfig& config,
                                                  const std::string& node,
                                                  const std::string& endpoint,
                                                  const TlsMaterial* tls, Metrics* metrics,
                                                  std::shared_ptr<FlightPeerClient>* peers) {
  const bool shared = config.shared_index();
  EngineOptions options = MakeEngineOptions(config);
  ARROW_ASSIGN_OR_RAISE(options.index, OpenIndex(config, node));
  ARROW_ASSIGN_OR_RAISE(auto stores, OpenStores(config, node));
  auto& store = stores.store;
  if (options.budget.cache_size == 0) {
    ARROW_ASSIGN_OR_RAISE(options.budget.cache_size, DefaultCacheSize(stores.data_dir->root()));
  }
  if (stores.disk && config.disk_tier) {
    options.disk_store = stores.disk;
    options.disk_size = config.disk_tier_size;
    if (options.disk_size == 0) {
      ARROW_ASSIGN_OR_RAISE(options.disk_size, DefaultCacheSize(stores.data_dir->root()));
    }
    options.disk_max_entry_bytes = config.disk_tier_max_entry_bytes;
    if (options.disk_max_entry_bytes > options.disk_size) {
      return arrow::Status::Invalid("disk_tier_max_entry_bytes (",
                                    FormatByteSize(options.disk_max_entry_bytes),
                                    ") is larger than disk_tier_size (",
                                    FormatByteSize(options.disk_size), ")");
    }
    spdlog::info("disk tier {}: {} (largest copy {})", stores.disk->Describe(),
                 FormatByteSize(options.disk_size),
                 FormatByteSize(options.disk_max_entry_bytes > 0 ? options.disk_max_entry_bytes
                                                                : options.disk_size / 8));
  }
  if (!shared) {
    // One process owns the data dir: it flushes it as `durability` says and keeps the
    // index's snapshot and log in it.
    ARROW_ASSIGN_OR_RAISE(auto durability, ParseDurability(config.durability));
    ARROW_ASSIGN_OR_RAISE(options.syncer,
                          Syncer::Open(stores.data_dir->root(), durability,
                                       std::chrono::milliseconds(config.sync_interval_ms)));
    stores.data_dir->SetSyncer(options.syncer);
    ARROW_ASSIGN_OR_RAISE(options.journal,
                          IndexJournal::Open(stores.data_dir->root() + "/.index"));
    options.index_log_bytes = config.index_log_bytes;
    options.rebuild_index = config.rebuild_index;
    spdlog::info("durability {}{}", config.durability,
                 durability == Durability::kProcess
                     ? fmt::format(" (flushed to disk every {} ms)", config.sync_interval_ms)
                     : std::string(" (each write is flushed before it is acknowledged)"));
  }
  options.store = store;
  options.node_id = node;
  options.endpoint = endpoint;
  // The engine uses it only with live_join.
  if (shared) {
    *peers = std::make_shared<FlightPeerClient>(options.index, node);
    (*peers)->set_client_options(PeerClientOptions(tls));
    options.peers = *peers;
  }
  ARROW_ASSIGN_OR_RAISE(options.sources, OpenSources(config, metrics));
  ARROW_ASSIGN_OR_RAISE(options.artifacts, OpenArtifacts(config));
  ARROW_ASSIGN_OR_RAISE(auto engine, Engine::Open(std::move(options)));
  ARROW_ASSIGN_OR_RAISE(auto stats, engine->management()->Stats());
  spdlog::info("node {}: index {} ({}), store {}; budget {} of {} used ({} policy, half_life "
               "{}), memory tier {}",
               node, stats.index_kind, stats.health.state, store->Describe(),
               FormatByteSize(stats.index.bytes), FormatByteSize(stats.budget.cache_size),
               stats.budget.policy, stats.budget.half_life,
               FormatByteSize(stats.memory.capacity));
  return engine;
}

arrow::Result<std::unique_ptr<HttpServer>> ListenHttp(const HttpConfig& config, Metrics* metrics,
                                                     const RequestLog* request_log,
                                                     const Authenticator* auth) {
  ARROW_ASSIGN_OR_RAISE(auto address, ParseHostPort(config.listen, "http.listen (--http)"));
  HttpServerOptions options;
  options.host = address.host;
  options.port = address.port;
  options.config = config;
  options.metrics = metrics;
  options.request_log = request_log;
  options.auth = auth;
  return HttpServer::Listen(options);
}

arrow::Status Run(const ServeFlags& flags) {
  ARROW_ASSIGN_OR_RAISE(auto config, LoadConfig(flags));
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  // Metrics and the request log (docs/observability.md); both outlive the servers.
  ARROW_ASSIGN_OR_RAISE(auto log_format, ParseLogFormat(config.log_format));
  InstallLogFormat(log_format);
  Metrics metrics;
  RequestLog request_log(log_format);
  // Signals are taken by one thread with sigwait; block them before any thread starts.
  const sigset_t signals = BlockServeSignals();
  ARROW_ASSIGN_OR_RAISE(auto auth, Authenticator::Make(config.auth));
  LogAuth(config, *auth);
  std::unique_ptr<AuditLog> audit;
  if (!config.auth.audit_log.empty()) {
    ARROW_ASSIGN_OR_RAISE(audit, AuditLog::Open(config.auth.audit_log));
    request_log.set_audit(audit.get());
    spdlog::info("audit log: {}", config.auth.audit_log);
  }

  // Listen first (UNAVAILABLE until the engine is open): the port names the node.
  ARROW_ASSIGN_OR_RAISE(auto flight,
                        FlightPort::Listen(config, &metrics, &request_log, auth.get()));
  const std::string endpoint = config.AdvertisedEndpoint(flight->port());
  const std::string node = config.node_id.empty() ? DefaultNodeId(flight->port()) : config.node_id;
  const std::string public_endpoint =
      config.public_endpoint.empty() ? endpoint : config.public_endpoint;
  ARROW_ASSIGN_OR_RAISE(auto public_location, arrow::flight::Location::Parse(public_endpoint));
  std::unique_ptr<HttpServer> http;
  if (config.http.enabled()) {
    ARROW_ASSIGN_OR_RAISE(http, ListenHttp(config.http, &metrics, &request_log, auth.get()));
  }
  Reloadable servers{auth.get(), flight.get(), http.get(), nullptr};
  ARROW_ASSIGN_OR_RAISE(auto engine, OpenEngine(config, node, endpoint, flight->tls().get(),
                                                &metrics, &servers.peers));
  flight->Start(public_location, engine.get());
  std::cout << "quiver listening on " << endpoint << std::endl;
  if (http) {
    http->Start(engine.get(), public_endpoint);
    std::cout << "quiver http listening on " << http->url() << std::endl;
    spdlog::info("serving HTTP on {} ({} worker threads)", http->url(), config.http.threads);
  }
  spdlog::info("serving {} as node {} (max object {}, keeping {} versions per key)", endpoint,
               node, FormatByteSize(config.max_object_bytes), config.keep_versions);

  auto served = ServeUntilSignalled(servers, config, engine.get(), signals);
  if (http) http->Stop();  // its handlers use the engine
  engine->Shutdown();  // before the exit below, which may skip the engine's destructor
  auto saved = engine->SaveLocalState();
  if (!saved.ok()) spdlog::warn("saving access histories: {}", saved.ToString());
  auto closed = engine->CheckpointAtShutdown();
  if (!closed.ok()) spdlog::error("{}", closed.ToString());
  // Every fill was told to stop between batches; one still running is stuck inside a
  // database call its driver cannot cancel (the SQLite driver has no cancel). Nothing it
  // could still produce would be published, and its temp file is removed at the next
  // start, so it is not worth waiting for.
  if (!engine->queries()->WaitForFills(1.0)) {
    spdlog::warn("some query executions did not stop; exiting without them");
    spdlog::info("quiver stopped");
    spdlog::shutdown();
    std::_Exit(served.ok() ? 0 : 1);
  }
  spdlog::info("quiver stopped");
  return served;
}

// Where entries are kept: --store and the S3 and disk-tier flags.
void AddStoreOptions(CLI::App* cmd, ServeFlags* flags) {
  cmd->add_option("--store", flags->store,
                  "Where entries are kept: local (the data dir) or s3://BUCKET[/PREFIX], with "
                  "the s3 settings of the config file (docs/shared-mode.md) [default: local]");
  cmd->add_option("--s3-region", flags->s3_region, "Region of the S3 bucket, e.g. eu-west-3");
  cmd->add_option("--s3-endpoint", flags->s3_endpoint,
                  "HOST:PORT of an S3-compatible server (path-style requests) [default: AWS]");
  cmd->add_option("--s3-ca-file", flags->s3_ca_file,
                  "PEM file of the CA that signs the S3 server's certificate "
                  "[default: the system's CAs]");
  cmd->add_option("--disk-tier-size", flags->disk_tier_size,
                  "With an S3 store: bytes of this node's disk tier in the data dir, e.g. "
                  "50GiB [default: 10% of its filesystem]");
  cmd->add_flag("--no-disk-tier", flags->no_disk_tier,
                "With an S3 store: keep no local copies; every read goes to S3");
}

// Shared mode: the index and how the other nodes and the clients reach this one.
void AddSharedOptions(CLI::App* cmd, ServeFlags* flags) {
  cmd->add_option("--index", flags->index,
                  "embedded, or redis://[user:password@]HOST:PORT[/DB] (rediss:// for TLS): "
                  "an index shared by several nodes (Redis, Valkey, Dragonfly) "
                  "[default: embedded]");
  cmd->add_option("--index-ca", flags->index_ca,
                  "rediss: PEM file of the CA that signs the server's certificate "
                  "[default: the system's CAs]");
  cmd->add_option("--index-prefix", flags->index_prefix,
                  "Prefix of every Redis key, so several caches can share one server "
                  "[default: quiver]");
  cmd->add_option("--node-id", flags->node_id,
                  "This node's name in logs, leases and blob names [default: HOSTNAME:PORT]");
  cmd->add_option("--advertise", flags->advertise,
                  "Where other nodes reach this one, grpc://HOST:PORT; needed with --index "
                  "redis://... when listening on 0.0.0.0 or [::] [default: the listen address "
                  "with its real port]");
  cmd->add_option("--public-endpoint", flags->public_endpoint,
                  "Where clients reach the cache, put in ObjectRefs and FlightInfo locations "
                  "(e.g. the load balancer in front of the nodes) [default: --advertise]");
}

// Who may call, the audit log, and TLS of the Flight port (docs/security.md).
void AddSecurityOptions(CLI::App* cmd, ServeFlags* flags) {
  cmd->add_option("--auth", flags->auth,
                  "none; tokens: callers present bearer tokens from --tokens-file "
                  "(`quiver token add` makes them); jwt: JSON Web Tokens, verified as the "
                  "config file's auth.jwt says [default: none, refused on a non-loopback "
                  "address without --allow-unauthenticated]")
      ->check(CLI::IsMember({"none", "tokens", "jwt"}));
  cmd->add_option("--tokens-file", flags->tokens_file,
                  "--auth tokens: the tokens file (salted hashes); SIGHUP re-reads it");
  cmd->add_flag("--allow-unauthenticated", flags->allow_unauthenticated,
                "Serve with --auth none on an address other than loopback (a warning is "
                "logged)");
  cmd->add_option("--audit-log", flags->audit_log,
                  "Append one JSON line per write, delete, invalidation and admin action to "
                  "this file [default: none]");
  cmd->add_option("--tls-cert", flags->tls_cert,
                  "PEM certificate chain: serve Flight over TLS, grpc+tls:// (with --tls-key)");
  cmd->add_option("--tls-key", flags->tls_key, "PEM private key of --tls-cert");
  cmd->add_option("--tls-client-ca", flags->tls_client_ca,
                  "PEM CA bundle: require client certificates signed by it (mutual TLS)");
}

}  // namespace

void AddServeCommand(CLI::App& app) {
  auto flags = std::make_shared<ServeFlags>();
  auto* cmd = app.add_subcommand("serve", "Run the Quiver Flight server");
  cmd->footer(
      "The first line on stdout is 'quiver listening on grpc://HOST:PORT'. Logs go to "
      "stderr.\nSIGINT/SIGTERM stop the server; writes in flight complete or are discarded.\n"
      "Flags override the config file, which overrides the defaults (docs/configuration.md).\n"
      "Many nodes form one cache with a shared --index redis://... and one data dir, or an "
      "S3 bucket (--store s3://...) (docs/shared-mode.md).");
  cmd->add_option("--listen", flags->listen,
                  "Address to listen on, grpc://HOST:PORT; port 0 picks a free port "
                  "[default: grpc://127.0.0.1:8815]");
  cmd->add_option("--data-dir", flags->data_dir,
                  "Directory of the local store; created if missing. Nodes of one cache share "
                  "it, unless --store is s3://..., when it holds this node's disk tier "
                  "[default: ./quiver-data]");
  cmd->add_option("--http", flags->http,
                  "Also serve HTTP on HOST:PORT (port 0 picks a free port; announced on stdout "
                  "after the Flight line; docs/http.md) [default: off]");
  cmd->add_option("--http-tls-cert", flags->http_tls_cert,
                  "PEM certificate chain: serve HTTPS (with --http-tls-key)");
  cmd->add_option("--http-tls-key", flags->http_tls_key, "PEM private key of --http-tls-cert");
  AddStoreOptions(cmd, flags.get());
  cmd->add_option("--config", flags->config_file, "JSON config file")->check(CLI::ExistingFile);
  AddSharedOptions(cmd, flags.get());
  AddSecurityOptions(cmd, flags.get());
  cmd->add_option("--max-object-bytes", flags->max_object_bytes,
                  "Largest object one put may store, e.g. 512MiB [default: 4GiB]");
  cmd->add_option("--keep-versions", flags->keep_versions,
                  "Versions of each key kept readable as key@N [default: 3]")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--log-level", flags->log_level,
                  "trace, debug, info, warn or error [default: info]");
  cmd->add_option("--log-format", flags->log_format,
                  "text, or json: every log line one JSON object, one line per request "
                  "(docs/observability.md) [default: text]")
      ->check(CLI::IsMember({"text", "json"}));
  cmd->add_option("--source", flags->sources,
                  "Add a query source NAME=URI (repeatable); the driver follows the URI: "
                  "demo=sqlite:///path/demo.db, pg=postgresql://user@127.0.0.1:5432/db");
  cmd->add_option("--max-entry-bytes", flags->max_entry_bytes,
                  "Query results larger than this stream but are not cached [default: 1GiB]");
  cmd->add_option("--cache-size", flags->cache_size,
                  "Disk budget, e.g. 20GiB; lower-scored entries are evicted to stay within it "
                  "[default: 10% of the data dir's filesystem]");
  cmd->add_option("--memory-size", flags->memory_size,
                  "Memory tier for small hot entries, e.g. 256MiB [default: 0, off]");
  cmd->add_option("--eviction-policy", flags->eviction_policy,
                  "cost (cost x recency-weighted hits / size) or lru [default: cost]")
      ->check(CLI::IsMember({"cost", "lru"}));
  cmd->add_option("--half-life", flags->half_life,
                  "Accesses over which an entry's weight halves (cost policy) [default: 1000]")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--durability", flags->durability,
                  "When an acknowledged write is on disk: process (survives a crash of the "
                  "process; flushed to disk within --sync-interval-ms) or fsync (before the "
                  "acknowledgement, concurrent writes sharing one flush) [default: process]")
      ->check(CLI::IsMember({"process", "fsync"}));
  cmd->add_option("--sync-interval-ms", flags->sync_interval_ms,
                  "durability process: milliseconds between background flushes of the data "
                  "dir [default: 1000]")
      ->check(CLI::Range(int64_t{1}, int64_t{3600} * 1000));
  cmd->add_flag("--no-verify-on-startup", flags->no_verify,
                "Skip checksum verification of stored entries when the index is rebuilt "
                "from the manifests (sizes are still checked)");
  cmd->add_flag("--rebuild-index", flags->rebuild_index,
                "Embedded node: ignore the index's snapshot and log in the data dir and "
                "rebuild the index from the manifests (checking every entry) at this start");
  cmd->callback([flags] {
    auto st = Run(*flags);
    if (!st.ok()) {
      spdlog::error("quiver serve: {}", st.ToString());
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace quiver
