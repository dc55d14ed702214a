// ArtifactSource: a Source that fetches files through Arrow's filesystems (file://, s3://, and
// whatever else arrow::fs::FileSystemFromUri opens) and reads them with Arrow's readers
// (exec/artifact_format.h), on a bounded worker pool (exec/worker_pool.h).
//
// Its "SQL" is an artifact's canonical request, {"artifact": URL, "format": NAME}, as made by
// Check(); the cache keys results by it like a query's. A fetch reads the file batch by batch
// into a table on a worker, within `timeout_s` (queueing included) and `max_bytes`, then
// streams the table. The
// table's schema metadata records where it came from: quiver.artifact.url, .format, .size,
// .mtime_ms and, when the filesystem reports one (S3), .etag.
//
// Which URLs may be fetched: only those under `allowed_prefixes` (none by default). A cache
// server must not read whatever file a client names. URLs are normalized before they are
// checked: local paths are resolved (symlinks and "..") and must stay under a prefix; for
// other filesystems "." and ".." segments are refused; a query string or fragment is refused
// (Arrow would take filesystem options from it, e.g. an S3 endpoint).
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <arrow/filesystem/filesystem.h>

#include "exec/artifact_format.h"
#include "exec/source.h"
#include "exec/worker_pool.h"

namespace quiver {

struct ArtifactSourceOptions {
  /// URL prefixes artifacts may come from, e.g. "file:///srv/data/", "s3://bucket/reports/".
  std::vector<std::string> allowed_prefixes;
  /// The fetch pool (name "artifacts").
  WorkerPoolOptions pool;
  /// Seconds a fetch may take, its wait for a worker included. Default: 60.
  double timeout_s = 60;
  /// TTL of an artifact whose request names none. Default: 300.
  double default_ttl_s = 300;
  /// The cache's max_entry_bytes: a file larger than this, or whose data passes it while it
  /// is read, is refused as too large (nothing larger could be cached). Default: 1 GiB.
  int64_t max_bytes = int64_t{1} << 30;
  /// Makes the filesystem of s3:// URLs (from the config's `s3` settings), called at the
  /// first s3:// fetch; null: Arrow's defaults (FileSystemFromUri).
  std::function<arrow::Result<std::shared_ptr<arrow::fs::FileSystem>>()> s3;
};

/// A checked artifact request.
struct ArtifactTarget {
  std::string url;  ///< normalized
  ArtifactFormat format = ArtifactFormat::kParquet;
  /// The canonical request: {"artifact": url, "format": name}.
  std::string canonical;
};

struct ArtifactSourceStats {
  int64_t fetches = 0;   ///< fetches started on a worker
  int64_t failures = 0;  ///< fetches that failed (timeouts and busy refusals included)
  WorkerPoolStats pool;
};

class ArtifactSource final : public Source {
 public:
  static arrow::Result<std::shared_ptr<ArtifactSource>> Make(ArtifactSourceOptions options);

  /// \brief Normalize `url`, check it is allowed, and settle its format (`format`, or the
  /// URL's extension when empty). Invalid naming the URL otherwise.
  arrow::Result<ArtifactTarget> Check(const std::string& url, const std::string& format) const;

  const SourceSpec& spec() const override { return spec_; }
  SqlDialect dialect() const override { return SqlDialect::kGeneric; }
  /// \brief Fetch the artifact whose canonical request is `sql` (`params` must be null).
  /// Busy (CapacityError) if the pool's queue is full, timed out (IOError) past timeout_s,
  /// too large (CapacityError, ArtifactTooLarge) past max_bytes, KeyError if the file does
  /// not exist, Invalid if it cannot be read.
  arrow::Result<std::unique_ptr<QueryStream>> Execute(
      const std::string& sql, std::shared_ptr<arrow::RecordBatch> params) override;

  /// \brief Fail waiting fetches (Cancelled) and refuse new ones (server shutdown).
  void Shutdown() { pool_->Shutdown(); }
  ArtifactSourceStats stats() const;

 private:
  struct Located;
  struct Counters;
  explicit ArtifactSource(ArtifactSourceOptions options);
  /// The filesystem and path of a normalized URL.
  arrow::Result<Located> Locate(const std::string& url) const;
  arrow::Result<std::shared_ptr<arrow::fs::FileSystem>> S3() const;

  ArtifactSourceOptions options_;
  SourceSpec spec_;
  std::vector<std::string> prefixes_;  // normalized, without a trailing '/'
  std::unique_ptr<WorkerPool> pool_;
  mutable std::mutex s3_mutex_;
  mutable std::shared_ptr<arrow::fs::FileSystem> s3_;
  std::shared_ptr<Counters> counters_;
};

}  // namespace quiver
