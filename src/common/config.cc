#include "common/config.h"

#include <cctype>
#include <cmath>
#include <fstream>
#include <sstream>

#include <arrow/util/uri.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace quiver {

arrow::Result<int64_t> ParseByteSize(const std::string& text) {
  size_t pos = 0;
  double number = 0;
  try {
    number = std::stod(text, &pos);
  } catch (const std::exception&) {
    return arrow::Status::Invalid("'", text, "' is not a byte size (e.g. 1048576 or 64MiB)");
  }
  std::string unit;
  for (char c : text.substr(pos)) {
    if (!std::isspace(static_cast<unsigned char>(c))) {
      unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  double scale = 0;
  if (unit.empty() || unit == "b") scale = 1;
  else if (unit == "kb" || unit == "k") scale = 1e3;
  else if (unit == "kib") scale = 1024.0;
  else if (unit == "mb" || unit == "m") scale = 1e6;
  else if (unit == "mib") scale = 1024.0 * 1024;
  else if (unit == "gb" || unit == "g") scale = 1e9;
  else if (unit == "gib") scale = 1024.0 * 1024 * 1024;
  else if (unit == "tb" || unit == "t") scale = 1e12;
  else if (unit == "tib") scale = 1024.0 * 1024 * 1024 * 1024;
  else return arrow::Status::Invalid("'", text, "' has an unknown size unit '", unit, "'");
  double bytes = number * scale;
  if (!(bytes >= 0) || bytes > 9.2e18) {
    return arrow::Status::Invalid("byte size '", text, "' is out of range");
  }
  return static_cast<int64_t>(std::llround(bytes));
}

std::string FormatByteSize(int64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

arrow::Result<int64_t> ByteSizeFromJson(const nlohmann::json& value) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_string()) return ParseByteSize(value.get<std::string>());
  return arrow::Status::Invalid("must be a byte count or a size like \"64MiB\", got ",
                                value.dump());
}

namespace {

arrow::Result<int64_t> SizeField(const nlohmann::json& v, const char* name) {
  auto size = ByteSizeFromJson(v);
  if (!size.ok()) {
    return arrow::Status::Invalid("config field '", name, "': ", size.status().message());
  }
  return size;
}

// A gRPC address, grpc://HOST:PORT; errors name the config field and its flag.
arrow::Result<arrow::util::Uri> ParseGrpcAddress(const char* field, const char* flag,
                                                 const std::string& address) {
  arrow::util::Uri uri;
  const auto parsed = uri.Parse(address);
  if (!parsed.ok() ||
      (uri.scheme() != "grpc" && uri.scheme() != "grpc+tcp" && uri.scheme() != "grpc+tls") ||
      uri.port() < 0) {
    return arrow::Status::Invalid(field, " '", address, "' (", flag,
                                  "): only grpc://HOST:PORT or grpc+tls://HOST:PORT is supported",
                                  parsed.ok() ? "" : " (" + parsed.message() + ")");
  }
  return uri;
}

// 0.0.0.0 and [::] take connections on every interface, but nobody can connect to them.
bool IsWildcardHost(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::";
}

arrow::Status ValidateFreshness(const SourceSpec& s) {
  if (!(s.stale_while_revalidate_s >= 0)) {
    return arrow::Status::Invalid("source '", s.name, "': stale_while_revalidate_s must be >= 0");
  }
  if (s.max_stale_while_revalidate_s && !(*s.max_stale_while_revalidate_s >= 0)) {
    return arrow::Status::Invalid("source '", s.name,
                                  "': max_stale_while_revalidate_s must be >= 0");
  }
  if (MaxStaleWhileRevalidate(s) < s.stale_while_revalidate_s) {
    return arrow::Status::Invalid("source '", s.name, "': stale_while_revalidate_s (",
                                  s.stale_while_revalidate_s,
                                  ") exceeds max_stale_while_revalidate_s (",
                                  MaxStaleWhileRevalidate(s), ")");
  }
  if (!(s.early_refresh_beta >= 0) || std::isinf(s.early_refresh_beta)) {
    return arrow::Status::Invalid("source '", s.name,
                                  "': early_refresh_beta must be a number >= 0 (0: off)");
  }
  return arrow::Status::OK();
}

}  // namespace

arrow::Status ServerConfig::LoadSources(const nlohmann::json& value, const std::string& path) {
  if (!value.is_object()) {
    return arrow::Status::Invalid("config file '", path, "': 'sources' must be an object of ",
                                  "name -> {driver, uri, ...}");
  }
  for (auto& [name, s] : value.items()) {
    SourceSpec spec;
    spec.name = name;
    if (!s.is_object()) {
      return arrow::Status::Invalid("config file '", path, "': source '", name,
                                    "' must be an object");
    }
    for (auto& [field, v] : s.items()) {
      if (field == "driver") spec.driver = v.get<std::string>();
      else if (field == "uri") spec.uri = v.get<std::string>();
      else if (field == "ttl_s") spec.ttl_s = v.get<double>();
      else if (field == "stale_while_revalidate_s") {
        spec.stale_while_revalidate_s = v.get<double>();
      } else if (field == "max_stale_while_revalidate_s") {
        spec.max_stale_while_revalidate_s = v.get<double>();
      } else if (field == "early_refresh_beta") {
        spec.early_refresh_beta = v.get<double>();
      } else if (field == "shared_results") {
        spec.shared_results = v.get<bool>();
      } else if (field == "max_concurrent") spec.max_concurrent = v.get<int64_t>();
      else if (field == "max_queue") spec.max_queue = v.get<int64_t>();
      else if (field == "options") {
        for (auto& [k, o] : v.items()) spec.options[k] = o.get<std::string>();
      } else if (field == "statement_options") {
        for (auto& [k, o] : v.items()) spec.statement_options[k] = o.get<std::string>();
      } else {
        return arrow::Status::Invalid("config file '", path, "': source '", name,
                                      "': unknown field '", field, "'");
      }
    }
    if (spec.driver.empty() || spec.uri.empty()) {
      return arrow::Status::Invalid("config file '", path, "': source '", name,
                                    "' needs 'driver' and 'uri'");
    }
    sources.push_back(std::move(spec));
  }
  return arrow::Status::OK();
}

arrow::Status ServerConfig::LoadS3(const nlohmann::json& value, const std::string& path) {
  if (!value.is_object()) {
    return arrow::Status::Invalid("config file '", path, "': 's3' must be an object");
  }
  for (auto& [field, v] : value.items()) {
    if (field == "region") s3.region = v.get<std::string>();
    else if (field == "endpoint") s3.endpoint = v.get<std::string>();
    else if (field == "scheme") s3.scheme = v.get<std::string>();
    else if (field == "path_style") s3.path_style = v.get<bool>();
    else if (field == "ca_file") s3.ca_file = v.get<std::string>();
    else if (field == "connect_timeout_s") s3.connect_timeout_s = v.get<double>();
    else if (field == "request_timeout_s") s3.request_timeout_s = v.get<double>();
    else if (field == "max_retries") s3.max_retries = v.get<int64_t>();
    else if (field == "access_key") s3.access_key = v.get<std::string>();
    else if (field == "secret_key") s3.secret_key = v.get<std::string>();
    else if (field == "session_token") s3.session_token = v.get<std::string>();
    else if (field == "credentials_file") s3.credentials_file = v.get<std::string>();
    else if (field == "profile") s3.profile = v.get<std::string>();
    else if (field == "sse_c_key_file") s3.sse_c_key_file = v.get<std::string>();
    else if (field == "sse_c_old_key_files") {
      s3.sse_c_old_key_files = v.get<std::vector<std::string>>();
    } else if (field == "readahead_bytes") {
      ARROW_ASSIGN_OR_RAISE(s3.readahead_bytes, SizeField(v, "s3.readahead_bytes"));
    } else if (field == "readahead_depth") s3.readahead_depth = v.get<int64_t>();
    else {
      return arrow::Status::Invalid("config file '", path, "': s3: unknown field '", field, "'");
    }
  }
  return arrow::Status::OK();
}

arrow::Status ServerConfig::LoadArtifacts(const nlohmann::json& value, const std::string& path) {
  if (!value.is_object()) {
    return arrow::Status::Invalid("config file '", path, "': 'artifacts' must be an object");
  }
  for (auto& [field, v] : value.items()) {
    if (field == "allowed_prefixes") {
      artifacts.allowed_prefixes = v.get<std::vector<std::string>>();
    } else if (field == "max_workers") artifacts.max_workers = v.get<int64_t>();
    else if (field == "max_queue") artifacts.max_queue = v.get<int64_t>();
    else if (field == "timeout_s") artifacts.timeout_s = v.get<double>();
    else if (field == "default_ttl_s") artifacts.default_ttl_s = v.get<double>();
    else {
      return arrow::Status::Invalid("config file '", path, "': artifacts: unknown field '", field,
                                    "'");
    }
  }
  return arrow::Status::OK();
}

arrow::Status ServerConfig::ValidateArtifacts() const {
  const ArtifactsConfig& a = artifacts;
  if (a.max_workers < 1) return arrow::Status::Invalid("artifacts.max_workers must be >= 1");
  if (a.max_queue < 0) return arrow::Status::Invalid("artifacts.max_queue must be >= 0");
  if (!(a.timeout_s > 0)) return arrow::Status::Invalid("artifacts.timeout_s must be > 0");
  if (!(a.default_ttl_s > 0)) return arrow::Status::Invalid("artifacts.default_ttl_s must be > 0");
  for (const auto& prefix : a.allowed_prefixes) {
    if (prefix.find("://") == std::string::npos) {
      return arrow::Status::Invalid("artifacts.allowed_prefixes: '", prefix,
                                    "' is not a URL prefix such as file:///srv/data/ or "
                                    "s3://bucket/prefix/");
    }
  }
  return arrow::Status::OK();
}

namespace {

// LoadFile's field setters: true, the field was known (and is now set).
template <typename T>
bool Set(T* field, const nlohmann::json& value) {
  *field = value.get<T>();
  return true;
}

arrow::Result<bool> SetSize(int64_t* field, const nlohmann::json& value, const std::string& name) {
  ARROW_ASSIGN_OR_RAISE(*field, SizeField(value, name.c_str()));
  return true;
}

arrow::Result<bool> Done(const arrow::Status& loaded) {
  ARROW_RETURN_NOT_OK(loaded);
  return true;
}

}  // namespace

// The node's data dir, store, durability and logging fields; false if `name` is none.
arrow::Result<bool> ServerConfig::LoadStorageField(const std::string& name,
                                                   const nlohmann::json& value,
                                                   const std::string& path) {
  if (name == "listen") return Set(&listen, value);
  if (name == "data_dir") return Set(&data_dir, value);
  if (name == "store") return Set(&store, value);
  if (name == "s3") return Done(LoadS3(value, path));
  if (name == "encryption_key_file") return Set(&encryption_key_file, value);
  if (name == "encryption_old_key_files") return Set(&encryption_old_key_files, value);
  if (name == "disk_tier") return Set(&disk_tier, value);
  if (name == "disk_tier_size") return SetSize(&disk_tier_size, value, name);
  if (name == "disk_tier_max_entry_bytes") return SetSize(&disk_tier_max_entry_bytes, value, name);
  if (name == "max_object_bytes") return SetSize(&max_object_bytes, value, name);
  if (name == "keep_versions") return Set(&keep_versions, value);
  if (name == "verify_on_startup") return Set(&verify_on_startup, value);
  if (name == "durability") return Set(&durability, value);
  if (name == "sync_interval_ms") return Set(&sync_interval_ms, value);
  if (name == "index_log_bytes") return SetSize(&index_log_bytes, value, name);
  if (name == "validate_full_on_put") return Set(&validate_full_on_put, value);
  if (name == "shutdown_grace_s") return Set(&shutdown_grace_s, value);
  if (name == "log_level") return Set(&log_level, value);
  if (name == "log_format") return Set(&log_format, value);
  return false;
}

// Budgets, eviction, fills; the sources, artifacts and http sections; false if `name` is none.
arrow::Result<bool> ServerConfig::LoadCacheField(const std::string& name,
                                                 const nlohmann::json& value,
                                                 const std::string& path) {
  if (name == "max_ttl_s") return Set(&max_ttl_s, value);
  if (name == "max_entry_bytes") return SetSize(&max_entry_bytes, value, name);
  if (name == "fill_memory_bytes") return SetSize(&fill_memory_bytes, value, name);
  if (name == "reclaim_interval_s") return Set(&reclaim_interval_s, value);
  if (name == "cancel_unread_fills") return Set(&cancel_unread_fills, value);
  if (name == "cache_size") return SetSize(&cache_size, value, name);
  if (name == "memory_size") return SetSize(&memory_size, value, name);
  if (name == "memory_max_entry_bytes") return SetSize(&memory_max_entry_bytes, value, name);
  if (name == "max_entries") return Set(&max_entries, value);
  if (name == "protect_s") return Set(&protect_s, value);
  if (name == "eviction_policy") return Set(&eviction_policy, value);
  if (name == "half_life") return Set(&half_life, value);
  if (name == "usage_save_interval_s") return Set(&usage_save_interval_s, value);
  if (name == "sources") return Done(LoadSources(value, path));
  if (name == "artifacts") return Done(LoadArtifacts(value, path));
  if (name == "http") return Done(http.Load(value, path));
  if (name == "auth") return Done(auth.Load(value, path));
  if (name == "tls") return Done(tls.Load(value, path));
  return false;
}

// Shared mode's fields (index, node, leases, garbage); false if `name` is none.
arrow::Result<bool> ServerConfig::LoadClusterField(const std::string& name,
                                                   const nlohmann::json& value,
                                                   const std::string& path) {
  (void)path;
  if (name == "index") return Set(&index, value);
  if (name == "index_ca") return Set(&index_ca, value);
  if (name == "index_prefix") return Set(&index_prefix, value);
  if (name == "index_timeout_s") return Set(&index_timeout_s, value);
  if (name == "node_id") return Set(&node_id, value);
  if (name == "advertise") return Set(&advertise, value);
  if (name == "public_endpoint") return Set(&public_endpoint, value);
  if (name == "lease_ttl_s") return Set(&lease_ttl_s, value);
  if (name == "fill_poll_s") return Set(&fill_poll_s, value);
  if (name == "live_join") return Set(&live_join, value);
  if (name == "shared_failure") return Set(&shared_failure, value);
  if (name == "garbage_grace_s") return Set(&garbage_grace_s, value);
  if (name == "sweep_interval_s") return Set(&sweep_interval_s, value);
  return false;
}

arrow::Status ServerConfig::LoadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return arrow::Status::IOError("cannot read config file '", path, "'");
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    return arrow::Status::Invalid("config file '", path, "' is not valid JSON: ", e.what());
  }
  if (!doc.is_object()) {
    return arrow::Status::Invalid("config file '", path, "' must hold a JSON object");
  }
  try {
    for (auto& [name, value] : doc.items()) {
      ARROW_ASSIGN_OR_RAISE(bool known, LoadStorageField(name, value, path));
      if (!known) {
        ARROW_ASSIGN_OR_RAISE(known, LoadCacheField(name, value, path));
      }
      if (!known) {
        ARROW_ASSIGN_OR_RAISE(known, LoadClusterField(name, value, path));
      }
      if (!known) {
        return arrow::Status::Invalid("config file '", path, "': unknown field '", name, "'");
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return arrow::Status::Invalid("config file '", path, "': wrong type: ", e.what());
  }
  return arrow::Status::OK();
}

arrow::Status ServerConfig::Validate() const {
  if (max_object_bytes <= 0) return arrow::Status::Invalid("max_object_bytes must be > 0");
  ARROW_RETURN_NOT_OK(http.Validate());
  ARROW_RETURN_NOT_OK(auth.Validate());
  ARROW_RETURN_NOT_OK(tls.Validate());
  if (keep_versions < 1) return arrow::Status::Invalid("keep_versions must be >= 1");
  if (shutdown_grace_s < 0) return arrow::Status::Invalid("shutdown_grace_s must be >= 0");
  if (data_dir.empty()) return arrow::Status::Invalid("data_dir must not be empty");
  if (!(max_ttl_s > 0)) return arrow::Status::Invalid("max_ttl_s must be > 0");
  if (max_entry_bytes <= 0) return arrow::Status::Invalid("max_entry_bytes must be > 0");
  if (fill_memory_bytes <= 0) return arrow::Status::Invalid("fill_memory_bytes must be > 0");
  if (reclaim_interval_s < 0) return arrow::Status::Invalid("reclaim_interval_s must be >= 0");
  if (usage_save_interval_s != 0 &&
      !(usage_save_interval_s >= 0.01 && usage_save_interval_s <= 86400)) {
    return arrow::Status::Invalid("usage_save_interval_s must be 0 (only at shutdown) or "
                                  "between 0.01 and 86400, got ", usage_save_interval_s);
  }
  if (durability != "process" && durability != "fsync") {
    return arrow::Status::Invalid("durability must be \"process\" or \"fsync\", not \"",
                                  durability, "\"");
  }
  if (sync_interval_ms < 1 || sync_interval_ms > 3600 * 1000) {
    return arrow::Status::Invalid("sync_interval_ms must be between 1 and 3600000, got ",
                                  sync_interval_ms);
  }
  if (index_log_bytes < (int64_t{1} << 16)) {
    return arrow::Status::Invalid("index_log_bytes must be at least 64KiB, got ",
                                  index_log_bytes);
  }
  if (cache_size < 0) return arrow::Status::Invalid("cache_size must be >= 0");
  if (memory_size < 0) return arrow::Status::Invalid("memory_size must be >= 0");
  if (max_entries < 0) return arrow::Status::Invalid("max_entries must be >= 0");
  if (protect_s < 0) return arrow::Status::Invalid("protect_s must be >= 0");
  if (eviction_policy != "cost" && eviction_policy != "lru") {
    return arrow::Status::Invalid("eviction_policy '", eviction_policy, "' is not cost or lru");
  }
  if (!(half_life > 0)) return arrow::Status::Invalid("half_life must be > 0");
  ARROW_RETURN_NOT_OK(ValidateAddresses());
  ARROW_RETURN_NOT_OK(ValidateShared());
  ARROW_RETURN_NOT_OK(ValidateStore());
  ARROW_RETURN_NOT_OK(ValidateArtifacts());
  for (size_t i = 0; i < sources.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (sources[i].name == sources[j].name) {
        return arrow::Status::Invalid("source '", sources[i].name, "' is defined twice");
      }
    }
    if (!(sources[i].ttl_s > 0)) {
      return arrow::Status::Invalid("source '", sources[i].name, "': ttl_s must be > 0");
    }
    ARROW_RETURN_NOT_OK(ValidateFreshness(sources[i]));
  }
  if (log_format != "text" && log_format != "json") {
    return arrow::Status::Invalid("log_format '", log_format, "' is not text or json");
  }
  static const char* kLevels[] = {"trace", "debug", "info", "warn", "error"};
  for (auto* l : kLevels) {
    if (log_level == l) return arrow::Status::OK();
  }
  return arrow::Status::Invalid("log_level '", log_level,
                                "' is not one of trace, debug, info, warn, error");
}

arrow::Status ServerConfig::ValidateAddresses() const {
  ARROW_ASSIGN_OR_RAISE(auto listening, ParseGrpcAddress("listen", "--listen", listen));
  if (listening.scheme() == "grpc+tls" && !tls.enabled()) {
    return arrow::Status::Invalid("listen '", listen, "' (--listen) asks for TLS: set tls.cert "
                                  "and tls.key (--tls-cert, --tls-key)");
  }
  if (!public_endpoint.empty()) {
    ARROW_RETURN_NOT_OK(
        ParseGrpcAddress("public_endpoint", "--public-endpoint", public_endpoint).status());
  }
  if (!advertise.empty()) {
    ARROW_ASSIGN_OR_RAISE(auto advertised,
                          ParseGrpcAddress("advertise", "--advertise", advertise));
    if (IsWildcardHost(advertised.host())) {
      return arrow::Status::Invalid("advertise '", advertise,
                                    "' (--advertise): other nodes cannot connect to a wildcard "
                                    "address; name this node's host");
    }
  } else if (shared_index() && IsWildcardHost(listening.host())) {
    // The advertised address goes into fill leases, where other nodes look it up.
    return arrow::Status::Invalid(
        "listen '", listen, "' is a wildcard address, which other nodes cannot connect to: "
        "set advertise (--advertise grpc://HOST:PORT) to an address of this node they can "
        "reach");
  }
  if (!auth.enabled() && !auth.allow_unauthenticated) {
    // Without authentication, whoever reaches the port may read, write and reconfigure.
    std::vector<std::pair<std::string, std::string>> hosts = {{"listen", listening.host()}};
    if (http.enabled()) {
      ARROW_ASSIGN_OR_RAISE(auto h, ParseHostPort(http.listen, "http.listen (--http)"));
      hosts.emplace_back("http.listen", h.host);
    }
    for (const auto& [field, host] : hosts) {
      if (IsLoopbackHost(host)) continue;
      return arrow::Status::Invalid(
          field, " '", host, "' is not a loopback address and auth.mode is \"none\": anyone "
          "who reaches it could read, write and reconfigure the cache. Set auth.mode "
          "\"tokens\" (--auth tokens --tokens-file FILE), or, if the network itself is "
          "trusted, auth.allow_unauthenticated: true (--allow-unauthenticated)");
    }
  }
  return arrow::Status::OK();
}

std::string ServerConfig::AdvertisedEndpoint(int port) const {
  if (!advertise.empty()) return advertise;
  arrow::util::Uri uri;
  if (!uri.Parse(listen).ok()) return listen;  // not validated
  return std::string(tls.enabled() ? "grpc+tls://" : "grpc://") +
         arrow::util::UriEncodeHost(uri.host()) + ":" + std::to_string(port);
}

arrow::Status ServerConfig::ValidateShared() const {
  // Only the scheme here (the password must not reach an error message); the URL itself is
  // parsed where the index is opened.
  if (shared_index() && index.rfind("redis://", 0) != 0 && index.rfind("rediss://", 0) != 0) {
    return arrow::Status::Invalid("index '", index.substr(0, index.find(':')),
                                  "...' (--index): use embedded, redis://HOST:PORT or "
                                  "rediss://HOST:PORT");
  }
  if (index_prefix.empty() || index_prefix.size() > 64) {
    return arrow::Status::Invalid("index_prefix must be 1 to 64 characters");
  }
  for (char c : index_prefix) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ||
          c == ':')) {
      return arrow::Status::Invalid("index_prefix '", index_prefix,
                                    "' may hold only letters, digits and . _ - :");
    }
  }
  if (!(index_timeout_s > 0)) return arrow::Status::Invalid("index_timeout_s must be > 0");
  if (!(lease_ttl_s >= 0.1)) return arrow::Status::Invalid("lease_ttl_s must be >= 0.1");
  if (!(fill_poll_s > 0)) return arrow::Status::Invalid("fill_poll_s must be > 0");
  if (shared_failure != "open" && shared_failure != "closed") {
    return arrow::Status::Invalid("shared_failure '", shared_failure, "' is not open or closed");
  }
  if (garbage_grace_s < 0) return arrow::Status::Invalid("garbage_grace_s must be >= 0");
  if (sweep_interval_s < 0) return arrow::Status::Invalid("sweep_interval_s must be >= 0");
  return arrow::Status::OK();
}

arrow::Status ServerConfig::ValidateStore() const {
  if (store != "local" && !s3_store()) {
    return arrow::Status::Invalid("store '", store, "' (--store): use local or s3://BUCKET[/PREFIX]");
  }
  if (disk_tier_size < 0) return arrow::Status::Invalid("disk_tier_size must be >= 0");
  if (disk_tier_max_entry_bytes < 0) {
    return arrow::Status::Invalid("disk_tier_max_entry_bytes must be >= 0");
  }
  if (!s3_store()) return arrow::Status::OK();
  if (store.size() <= 5 || store[5] == '/') {
    return arrow::Status::Invalid("store '", store, "' (--store) names no bucket: s3://BUCKET[/PREFIX]");
  }
  if (s3.region.empty()) {
    return arrow::Status::Invalid("store '", store, "' needs s3.region (e.g. eu-west-3) in the "
                                  "config file or --s3-region");
  }
  if (s3.scheme != "https" && s3.scheme != "http") {
    return arrow::Status::Invalid("s3.scheme '", s3.scheme, "' is not https or http");
  }
  if (!(s3.connect_timeout_s > 0) || !(s3.request_timeout_s > 0)) {
    return arrow::Status::Invalid("s3.connect_timeout_s and s3.request_timeout_s must be > 0");
  }
  if (s3.max_retries < 0 || s3.max_retries > 20) {
    return arrow::Status::Invalid("s3.max_retries must be between 0 and 20");
  }
  if (s3.readahead_bytes < 4096 || s3.readahead_bytes > (int64_t{1} << 30)) {
    return arrow::Status::Invalid("s3.readahead_bytes must be between 4KiB and 1GiB");
  }
  if (s3.readahead_depth < 1 || s3.readahead_depth > 64) {
    return arrow::Status::Invalid("s3.readahead_depth must be between 1 and 64");
  }
  if (s3.access_key.empty() != s3.secret_key.empty()) {
    return arrow::Status::Invalid("s3.access_key and s3.secret_key go together");
  }
  return arrow::Status::OK();
}

}  // namespace quiver
