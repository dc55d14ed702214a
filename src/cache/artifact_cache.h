// ArtifactCache: the thin front for artifacts -- files fetched through Arrow's filesystems
// (exec/artifact_source.h) and cached like query results.
//
// An artifact request is planned into a QueryPlan whose source is the ArtifactSource and whose
// "SQL" is the artifact's canonical request; from there the QueryCache does everything it does
// for a query: the key's single flight (concurrent requests fetch once), the fill that streams
// to every reader while it is stored, the publish with its lease, the TTL and the reclaiming.
// A hit never touches the source. The key covers the scope, the normalized URL and the format
// -- never the TTL.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cache/entry_store.h"
#include "cache/query_cache.h"
#include "exec/artifact_source.h"

namespace quiver {

struct ArtifactRequest {
  std::string url;
  /// A format name (exec/artifact_format.h); empty: from the URL's extension.
  std::string format;
  /// Requested TTL; artifacts.default_ttl_s when empty; capped at max_ttl_s.
  std::optional<double> ttl_s;
  /// Whose cache this is: in the key, as a query's scope.
  std::string scope = "anonymous";
  /// The tenant whose budget the artifact counts against (QueryRequest::tenant).
  std::string tenant;
};

/// What a fetch that waited for the artifact to be cached learned.
struct ArtifactFetched {
  std::string key;    ///< 64 hex digits, as in a query's response
  std::string cache;  ///< "hit", "miss" or "joined"
  std::string url;    ///< normalized
  std::string format;
  int64_t rows = 0, bytes = 0, created_ms = 0, expires_ms = 0;
  std::string etag;        ///< the source's ETag, if it reports one
  int64_t mtime_ms = -1;   ///< the source file's modification time
  int64_t size = -1;       ///< the source file's size
};

struct ArtifactStats {
  int64_t hits = 0, misses = 0, joins = 0;
  ArtifactSourceStats source;
};

class ArtifactCache {
 public:
  /// `source` null: every artifact request is refused.
  /// `max_entry_bytes`: the query cache's, named when a result was too large to cache.
  ArtifactCache(QueryCache* queries, EntryStore* entries, std::shared_ptr<ArtifactSource> source,
                double max_ttl_s, int64_t max_entry_bytes)
      : queries_(queries),
        entries_(entries),
        source_(std::move(source)),
        max_ttl_s_(max_ttl_s),
        max_entry_bytes_(max_entry_bytes) {}

  /// \brief Check the URL (allowed prefixes, format) and compute its key and TTL.
  arrow::Result<QueryPlan> Plan(const ArtifactRequest& request) const;
  /// \brief True if `plan` is an artifact's (made by Plan()).
  bool Owns(const QueryPlan& plan) const { return source_ && plan.source == source_; }
  /// \brief Serve a planned artifact: a hit, or a fetch (new or joined). As QueryCache::Execute.
  arrow::Result<QueryResponse> Execute(const QueryPlan& plan);
  /// \brief Serve `request` and wait until the artifact is cached (the `artifact-fetch`
  /// action). Fails with the fetch's error; or if the result could not be stored: too large
  /// (a kTooLarge rejection of max_entry_bytes) when it outgrew max_entry_bytes.
  arrow::Result<ArtifactFetched> Fetch(const ArtifactRequest& request);

  /// \brief Fail waiting fetches and refuse new ones (server shutdown).
  void Shutdown() {
    if (source_) source_->Shutdown();
  }
  ArtifactStats Stats() const;

 private:
  /// Fill `out` from the stored entry of `plan` (meta and the schema's provenance).
  arrow::Status Describe(const OpenEntry& entry, ArtifactFetched* out) const;

  QueryCache* queries_;
  EntryStore* entries_;
  std::shared_ptr<ArtifactSource> source_;
  double max_ttl_s_;
  int64_t max_entry_bytes_;
  mutable std::mutex mutex_;
  ArtifactStats stats_;
};

}  // namespace quiver
