// Server configuration: defaults, a JSON config file, then command-line overrides.
//
// The config file is a JSON object; every field is optional and an unknown field is an
// error that names it (a typo must not silently fall back to a default). See
// docs/configuration.md for the fields.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <nlohmann/json_fwd.hpp>

#include "common/http_config.h"
#include "common/security_config.h"
#include "common/source_spec.h"

namespace quiver {

/// How to reach an S3 bucket (`store: s3://...`); docs/shared-mode.md. Secrets here are
/// never logged nor put in errors.
struct S3Config {
  /// AWS region, e.g. eu-west-3. Required.
  std::string region;
  /// host:port of an S3-compatible server; empty: AWS.
  std::string endpoint;
  /// "https" or "http". Default: https.
  std::string scheme = "https";
  /// Path-style requests (https://HOST/BUCKET/KEY); always with an `endpoint` (S3-compatible
  /// servers need them). Default: false (virtual-hosted, for AWS).
  bool path_style = false;
  /// PEM CA bundle for a private TLS certificate; empty: the system's.
  std::string ca_file;
  double connect_timeout_s = 5;
  double request_timeout_s = 30;
  /// Retries of a failed request (AWS standard retry strategy). Default: 3.
  int64_t max_retries = 3;
  /// Credentials: these, else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
  /// AWS_SESSION_TOKEN, else `credentials_file` (the AWS INI format, `profile`).
  std::string access_key;
  std::string secret_key;
  std::string session_token;
  std::string credentials_file;
  std::string profile = "default";
  /// SSE-C: the customer key (32 bytes raw or 64 hex digits) new objects are written
  /// with, from this file or the QUIVER_SSE_C_KEY environment variable; empty: no SSE-C.
  std::string sse_c_key_file;
  /// Keys of earlier objects, still read until those expire (key rotation).
  std::vector<std::string> sse_c_old_key_files;
  /// Hits read objects ahead in ranges of this many bytes, this many at a time.
  int64_t readahead_bytes = int64_t{4} << 20;
  int64_t readahead_depth = 2;
};

/// Artifacts: files fetched through Arrow's filesystems and cached (docs/artifacts.md).
struct ArtifactsConfig {
  /// URL prefixes artifacts may be fetched from, e.g. "file:///srv/data/" or
  /// "s3://bucket/reports/". A URL is allowed if it lies under one of them, segment-wise,
  /// after normalization (local paths resolved, symlinks included). Default: none -- no
  /// artifact can be fetched until some are configured.
  std::vector<std::string> allowed_prefixes;
  /// Fetches running at once. Default: 4.
  int64_t max_workers = 4;
  /// Fetches waiting for a worker before new ones are refused (busy). Default: 64.
  int64_t max_queue = 64;
  /// Seconds a fetch may take, queueing included, before it fails (DEADLINE_EXCEEDED).
  /// Default: 60.
  double timeout_s = 60;
  /// TTL of a cached artifact when the request names none, seconds. Default: 300.
  double default_ttl_s = 300;
};

struct ServerConfig {
  /// Where to listen. Port 0 picks a free port. Default: grpc://127.0.0.1:8815.
  std::string listen = "grpc://127.0.0.1:8815";
  /// Root of the local store (with an S3 store: of the node-local disk tier).
  /// Default: ./quiver-data.
  std::string data_dir = "quiver-data";
  /// Where entries are kept: "local" (data_dir) or s3://BUCKET[/PREFIX]. Default: local.
  std::string store = "local";
  /// S3 settings (store: s3://...).
  S3Config s3;
  /// Encrypt local blobs (the local store, the disk tier) with AES-256-GCM under this key
  /// (32 bytes raw or 64 hex digits; or the QUIVER_ENCRYPTION_KEY environment variable).
  std::string encryption_key_file;
  /// Keys of blobs written before a rotation, still read.
  std::vector<std::string> encryption_old_key_files;
  /// With an S3 store: keep node-local copies of entries in data_dir. Default: true.
  bool disk_tier = true;
  /// With an S3 store: bytes of the node-local disk tier in data_dir; 0: 10% of its
  /// filesystem. Default: 0.
  int64_t disk_tier_size = 0;
  /// Largest entry the disk tier copies; 0: disk_tier_size / 8. Default: 0.
  int64_t disk_tier_max_entry_bytes = 0;
  /// Largest object a single DoPut may store, in bytes. Default: 4 GiB.
  int64_t max_object_bytes = int64_t{4} << 30;
  /// How many versions of each key stay readable as key@N. Default: 3.
  int64_t keep_versions = 3;
  /// Verify every entry's checksum when the index is rebuilt from the manifests. Default: true.
  bool verify_on_startup = true;
  /// Embedded node: at this start, ignore the index journal and rebuild the index from the
  /// manifests (verifying checksums as verify_on_startup says). Flag only. Default: false.
  bool rebuild_index = false;
  /// Embedded node: when an acknowledged write is on disk -- "process" (it survives a crash
  /// of the process at once, the disk within sync_interval_ms) or "fsync" (before the
  /// acknowledgement; concurrent writes share one flush). Default: process.
  std::string durability = "process";
  /// "process": milliseconds between background flushes of the data dir. Default: 1000.
  int64_t sync_interval_ms = 1000;
  /// Embedded node: the index journal's log is folded into a new snapshot past this size.
  /// Default: 64 MiB.
  int64_t index_log_bytes = int64_t{64} << 20;
  /// Fully validate every batch put (offsets, UTF-8, ...); false checks only structure,
  /// which is cheaper but lets bad offsets or invalid UTF-8 be stored. Default: true.
  bool validate_full_on_put = true;
  /// Seconds that in-flight calls get to finish on SIGINT/SIGTERM. Default: 10.
  double shutdown_grace_s = 10;
  /// trace, debug, info, warn, error. Default: info.
  std::string log_level = "info";
  /// text (spdlog's lines) or json (every log line one JSON object, and one line per
  /// request; docs/observability.md). Default: text.
  std::string log_format = "text";

  /// The HTTP interface (off unless http.listen is set; docs/http.md).
  HttpConfig http;
  /// Who may call the node, and the audit log (docs/security.md).
  AuthConfig auth;
  /// TLS of the Flight port (docs/security.md).
  TlsConfig tls;

  /// Query sources, by name.
  std::vector<SourceSpec> sources;
  /// Artifact fetches (files through Arrow's filesystems).
  ArtifactsConfig artifacts;
  /// Upper bound of any query result's TTL, seconds. Default: 86400.
  double max_ttl_s = 86400;
  /// Results larger than this stream to the client but are not cached. Default: 1 GiB.
  int64_t max_entry_bytes = int64_t{1} << 30;
  /// Bytes of a result a query execution holds in memory, at most, when its readers cannot
  /// read it from a local file. Default: 64 MiB.
  int64_t fill_memory_bytes = int64_t{64} << 20;
  /// Seconds between sweeps that reclaim expired results. Default: 10.
  double reclaim_interval_s = 10;
  /// Cancel a query fill when its last reader disconnects. Default: false.
  bool cancel_unread_fills = false;

  /// Disk budget in bytes; 0 means 10% of the data dir's filesystem. Default: 0.
  int64_t cache_size = 0;
  /// Memory tier for small hot entries, bytes; 0 disables it. Default: 0.
  int64_t memory_size = 0;
  /// Largest entry the memory tier takes; 0: memory_size / 8. Default: 0.
  int64_t memory_max_entry_bytes = 0;
  /// Most keys stored; 0: unlimited. Default: 1,000,000.
  int64_t max_entries = 1'000'000;
  /// Entries younger than this are never evicted to make room. Default: 0.
  double protect_s = 0;
  /// "cost" (cachey's score: cost x recency-weighted hits / size) or "lru". Default: cost.
  std::string eviction_policy = "cost";
  /// Accesses over which a cost-aware weight halves. Default: 1000.
  double half_life = 1000;
  /// Seconds between saves of the entries' access histories (when they changed); 0: only
  /// at shutdown. Default: 30.
  double usage_save_interval_s = 30;

  // Shared mode (docs/shared-mode.md).
  /// "embedded", or redis://[user:password@]HOST:PORT[/DB] / rediss://... for an index shared
  /// by several nodes (Redis, Valkey or Dragonfly). Default: embedded.
  std::string index = "embedded";
  /// rediss: CA file that signs the server's certificate; empty: the system's.
  std::string index_ca;
  /// Prefix of every Redis key, so several caches can share one server. Default: quiver.
  std::string index_prefix = "quiver";
  /// Seconds a Redis call may take before the index counts as unavailable. Default: 2.
  double index_timeout_s = 2;
  /// This node's name in logs, leases and blob names. Default: HOSTNAME:PORT.
  std::string node_id;
  /// Where other nodes reach this one (grpc://HOST:PORT). Default: the listen address with
  /// its real port; required in shared mode when that is a wildcard (0.0.0.0, [::]).
  std::string advertise;
  /// Where clients reach the cache: the address in ObjectRefs and FlightInfo locations (a
  /// load balancer in front of a cluster). Default: this node's advertised address.
  std::string public_endpoint;
  /// Fill leases expire this long after their last renewal. Default: 10.
  double lease_ttl_s = 10;
  /// A node waiting for another node's fill checks the index this often. Default: 0.2.
  double fill_poll_s = 0.2;
  /// Stream another node's running fill to this node's clients (else wait for its result).
  /// Default: true.
  bool live_join = true;
  /// While the index is unreachable: "open" (serve what storage holds, run queries without
  /// caching) or "closed" (fail requests with UNAVAILABLE). Default: open.
  std::string shared_failure = "open";
  /// Unreferenced blobs younger than this are never swept. Default: 3600.
  double garbage_grace_s = 3600;
  /// Seconds between garbage sweeps; 0: none. Default: 600.
  double sweep_interval_s = 600;

  /// True when the index is shared (not embedded).
  bool shared_index() const { return index != "embedded"; }
  /// True when entries are kept in S3.
  bool s3_store() const { return store.rfind("s3://", 0) == 0; }

  /// \brief Overlay the fields present in a JSON config file onto this config.
  arrow::Status LoadFile(const std::string& path);
  /// \brief Check ranges and addresses; the error names the field (and its flag).
  arrow::Status Validate() const;

  /// \brief Where other nodes reach this node once it listens on `port`: `advertise`, else
  /// the listen address with that port.
  /// REQUIRES: Validate() is OK.
  std::string AdvertisedEndpoint(int port) const;

 private:
  // LoadFile's fields by concept: true if `name` was one of them (and is now set).
  arrow::Result<bool> LoadStorageField(const std::string& name, const nlohmann::json& value,
                                       const std::string& path);
  arrow::Result<bool> LoadCacheField(const std::string& name, const nlohmann::json& value,
                                     const std::string& path);
  arrow::Result<bool> LoadClusterField(const std::string& name, const nlohmann::json& value,
                                       const std::string& path);
  arrow::Status LoadSources(const nlohmann::json& value, const std::string& path);
  arrow::Status ValidateShared() const;
  arrow::Status ValidateStore() const;
  arrow::Status LoadS3(const nlohmann::json& value, const std::string& path);
  arrow::Status LoadArtifacts(const nlohmann::json& value, const std::string& path);
  arrow::Status ValidateArtifacts() const;
  arrow::Status ValidateAddresses() const;
};

/// \brief Parse a byte size: a plain integer, or a number with B, KB, KiB, MB, MiB, GB,
/// GiB, TB, TiB (case-insensitive), e.g. "64MiB" or "1.5GB".
arrow::Result<int64_t> ParseByteSize(const std::string& text);
/// \brief A size given in JSON: a byte count, or a string ParseByteSize reads. The error
/// says what is wrong, not where: the caller names the field.
arrow::Result<int64_t> ByteSizeFromJson(const nlohmann::json& value);

/// \brief Render a byte count for humans, e.g. "1.5 GiB".
std::string FormatByteSize(int64_t bytes);

}  // namespace quiver
