#include "cli/serve_command.h"

#include <pthread.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <thread>

#include <arrow/flight/server.h>
#include <arrow/util/uri.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "cache/object_cache.h"
#include "cache/query_cache.h"
#include "exec/adbc_source.h"
#include "common/config.h"
#include "index/embedded_index.h"
#include "server/flight_service.h"
#include "storage/local_blob_store.h"

namespace quiver {

namespace {

struct ServeFlags {
  std::string config_file;
  std::string listen;
  std::string data_dir;
  std::string max_object_bytes;
  int64_t keep_versions = 0;
  std::string log_level;
  bool no_verify = false;
  std::vector<std::string> sources;
  std::string max_entry_bytes;
  std::string cache_size;
  std::string memory_size;
  std::string eviction_policy;
  double half_life = 0;
};

// 10% of the filesystem holding `dir` (the default disk budget).
arrow::Result<int64_t> DefaultCacheSize(const std::string& dir) {
  struct statvfs fs;
  if (::statvfs(dir.c_str(), &fs) != 0) {
    return arrow::Status::IOError("statvfs '", dir, "': ", std::strerror(errno));
  }
  return static_cast<int64_t>(fs.f_blocks) * static_cast<int64_t>(fs.f_frsize) / 10;
}

arrow::Status Run(const ServeFlags& flags) {
  ServerConfig config;
  if (!flags.config_file.empty()) ARROW_RETURN_NOT_OK(config.LoadFile(flags.config_file));
  if (!flags.listen.empty()) config.listen = flags.listen;
  if (!flags.data_dir.empty()) config.data_dir = flags.data_dir;
  if (!flags.max_object_bytes.empty()) {
    ARROW_ASSIGN_OR_RAISE(config.max_object_bytes, ParseByteSize(flags.max_object_bytes));
  }
  if (flags.keep_versions > 0) config.keep_versions = flags.keep_versions;
  if (!flags.log_level.empty()) config.log_level = flags.log_level;
  if (flags.no_verify) config.verify_on_startup = false;
  if (!flags.max_entry_bytes.empty()) {
    ARROW_ASSIGN_OR_RAISE(config.max_entry_bytes, ParseByteSize(flags.max_entry_bytes));
  }
  if (!flags.cache_size.empty()) {
    ARROW_ASSIGN_OR_RAISE(config.cache_size, ParseByteSize(flags.cache_size));
  }
  if (!flags.memory_size.empty()) {
    ARROW_ASSIGN_OR_RAISE(config.memory_size, ParseByteSize(flags.memory_size));
  }
  if (!flags.eviction_policy.empty()) config.eviction_policy = flags.eviction_policy;
  if (flags.half_life > 0) config.half_life = flags.half_life;
  for (const auto& flag : flags.sources) {
    ARROW_ASSIGN_OR_RAISE(auto spec, ParseSourceFlag(flag));
    config.sources.push_back(std::move(spec));
  }
  ARROW_RETURN_NOT_OK(config.Validate());
  spdlog::set_level(spdlog::level::from_str(config.log_level));

  arrow::util::Uri uri;
  ARROW_RETURN_NOT_OK(uri.Parse(config.listen));
  if (uri.scheme() != "grpc" && uri.scheme() != "grpc+tcp") {
    return arrow::Status::Invalid("--listen '", config.listen,
                                  "': only grpc://HOST:PORT is supported");
  }
  ARROW_ASSIGN_OR_RAISE(auto location, arrow::flight::Location::Parse(config.listen));

  // Signals are taken by one thread with sigwait; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ARROW_ASSIGN_OR_RAISE(auto store, LocalBlobStore::Open(config.data_dir));
  ObjectCacheOptions options;
  options.store = store;
  options.index = std::make_shared<EmbeddedIndex>();
  options.max_object_bytes = config.max_object_bytes;
  options.keep_versions = config.keep_versions;
  options.verify_on_startup = config.verify_on_startup;
  options.validate_full_on_put = config.validate_full_on_put;
  options.budget.cache_size = config.cache_size;
  if (options.budget.cache_size == 0) {
    ARROW_ASSIGN_OR_RAISE(options.budget.cache_size, DefaultCacheSize(store->root()));
  }
  options.budget.max_entries = config.max_entries;
  options.budget.protect_s = config.protect_s;
  options.budget.policy = config.eviction_policy;
  options.budget.half_life = config.half_life;
  options.memory_size = config.memory_size;
  options.memory_max_entry_bytes = config.memory_max_entry_bytes;
  options.usage_save_interval_s = config.usage_save_interval_s;
  ARROW_ASSIGN_OR_RAISE(auto cache, ObjectCache::Open(options));
  spdlog::info("data dir {}: {}", store->root(), cache->recovery().ToString());
  {
    auto stats = *cache->Stats();
    spdlog::info("budget: {} of {} used ({} policy, half_life {}), memory tier {}",
                 FormatByteSize(stats.budget_used), FormatByteSize(stats.budget.cache_size),
                 stats.budget.policy, stats.budget.half_life,
                 FormatByteSize(stats.memory.capacity));
  }

  QueryCacheOptions query_options;
  query_options.objects = cache.get();
  query_options.max_ttl_s = config.max_ttl_s;
  query_options.max_entry_bytes = config.max_entry_bytes;
  query_options.reclaim_interval_s = config.reclaim_interval_s;
  query_options.cancel_unread_fills = config.cancel_unread_fills;
  for (const auto& spec : config.sources) {
    auto source = OpenAdbcSource(spec);
    if (!source.ok()) {
      return arrow::Status::Invalid("cannot open source '", spec.name, "' (", spec.driver, " ",
                                    spec.uri, "): ", source.status().message());
    }
    query_options.sources[spec.name] = *source;
    spdlog::info("source {}: {} {} (ttl {} s, {} concurrent, queue {})", spec.name, spec.driver,
                 spec.uri, spec.ttl_s, spec.max_concurrent, spec.max_queue);
  }
  ARROW_ASSIGN_OR_RAISE(auto queries, QueryCache::Make(std::move(query_options)));

  QuiverFlightService service(cache.get(), queries.get());
  arrow::flight::FlightServerOptions server_options(location);
  auto st = service.Init(server_options);
  if (!st.ok()) {
    return arrow::Status::IOError("cannot listen on ", config.listen, ": ", st.message());
  }
  // Advertise the address as the user spelled it, with the real port.
  std::string host = uri.host().find(':') != std::string::npos ? "[" + uri.host() + "]"
                                                                : uri.host();
  std::string advertised_text = "grpc://" + host + ":" + std::to_string(service.port());
  ARROW_ASSIGN_OR_RAISE(auto advertised, arrow::flight::Location::Parse(advertised_text));
  service.set_endpoint(advertised);
  std::cout << "quiver listening on " << advertised_text << std::endl;
  spdlog::info("serving {} (max object {}, keeping {} versions per key)", advertised_text,
               FormatByteSize(config.max_object_bytes),
               config.keep_versions);

  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("received {}, shutting down (in-flight calls get {} s)",
                 sig == SIGINT ? "SIGINT" : "SIGTERM", config.shutdown_grace_s);
    queries->Shutdown();  // readers of running queries must not hold the shutdown up
    auto deadline = std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(config.shutdown_grace_s * 1000));
    auto down = service.Shutdown(&deadline);
    if (!down.ok()) spdlog::error("shutdown: {}", down.ToString());
  });
  st = service.Wait();
  signal_thread.join();
  // Before the exit below, which may skip the cache's destructor.
  auto saved = cache->SaveUsage();
  if (!saved.ok()) spdlog::warn("saving access histories: {}", saved.ToString());
  ARROW_RETURN_NOT_OK(st);
  // Every fill was told to stop between batches; one still running is stuck inside a
  // database call its driver cannot cancel (the SQLite driver has no cancel). Nothing it
  // could still produce would be published, and its temp file is removed at the next
  // start, so it is not worth waiting for.
  if (!queries->WaitForFills(1.0)) {
    spdlog::warn("some query executions did not stop; exiting without them");
    spdlog::info("quiver stopped");
    spdlog::shutdown();
    std::_Exit(0);
  }
  spdlog::info("quiver stopped");
  return arrow::Status::OK();
}

}  // namespace

void AddServeCommand(CLI::App& app) {
  auto flags = std::make_shared<ServeFlags>();
  auto* cmd = app.add_subcommand("serve", "Run the Quiver Flight server on a local data dir");
  cmd->footer(
      "The first line on stdout is 'quiver listening on grpc://HOST:PORT'. Logs go to "
      "stderr.\nSIGINT/SIGTERM stop the server; writes in flight complete or are discarded.\n"
      "Flags override the config file, which overrides the defaults (docs/configuration.md).");
  cmd->add_option("--listen", flags->listen,
                  "Address to listen on, grpc://HOST:PORT; port 0 picks a free port "
                  "[default: grpc://127.0.0.1:8815]");
  cmd->add_option("--data-dir", flags->data_dir,
                  "Directory of the local store; created if missing [default: ./quiver-data]");
  cmd->add_option("--config", flags->config_file, "JSON config file")->check(CLI::ExistingFile);
  cmd->add_option("--max-object-bytes", flags->max_object_bytes,
                  "Largest object one put may store, e.g. 512MiB [default: 4GiB]");
  cmd->add_option("--keep-versions", flags->keep_versions,
                  "Versions of each key kept readable as key@N [default: 3]")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--log-level", flags->log_level,
                  "trace, debug, info, warn or error [default: info]");
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
  cmd->add_flag("--no-verify-on-startup", flags->no_verify,
                "Skip checksum verification of stored entries at startup (sizes are "
                "still checked)");
  cmd->callback([flags] {
    auto st = Run(*flags);
    if (!st.ok()) {
      spdlog::error("quiver serve: {}", st.ToString());
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace quiver
