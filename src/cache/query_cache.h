// QueryCache: read-through caching of query results with single-flight fills.
//
// A request names a source, SQL and parameters. Its cache key is the SHA-256 of the
// caller's scope, the source name, the normalized SQL and the parameters. A fresh entry
// under that key is a hit, served from the store. Otherwise the first request starts a
// Fill -- one execution on the source, each batch encoded once and written both to the
// store and to every reader -- and later identical requests join it and read it live from
// its first batch. On success the entry commits with its TTL; on failure or cancellation
// nothing is committed and the next request executes again.
//
// Previews and non-deterministic queries (unless the request opts in) bypass the cache:
// they execute for their caller alone and are never stored.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "cache/fill.h"
#include "cache/object_cache.h"
#include "exec/source.h"

namespace quiver {

struct QueryRequest {
  std::string source;
  std::string sql;
  /// JSON array of parameter values.
  std::string params_json = "[]";
  /// Requested TTL; the source's default when empty; capped at max_ttl_s.
  std::optional<double> ttl_s;
  bool preview = false;
  bool cache_nondeterministic = false;
  /// Whose cache this is; fixed until authentication exists, but already in the key.
  std::string scope = "anonymous";
  /// Keys the result is computed from, and tags: invalidating one removes the result (and
  /// stops a running fill from committing). Not part of the cache key.
  std::vector<std::string> depends_on;
  std::vector<std::string> tags;
};

/// What Plan() decided about a request, before anything runs.
struct QueryPlan {
  QueryRequest request;
  std::shared_ptr<Source> source;
  std::string normalized_sql;
  std::shared_ptr<arrow::RecordBatch> params;
  std::string canonical;  ///< canonical JSON of what the key covers
  std::string key;        ///< 64 hex digits of SHA-256(canonical)
  double ttl_s = 0;
  /// Why the request bypasses the cache ("preview", "non-deterministic: random()"), or
  /// empty if it is cacheable.
  std::string bypass_reason;
};

struct QueryResponse {
  enum class Kind { kHit, kMiss, kBypass };
  Kind kind = Kind::kMiss;
  bool joined = false;     ///< a miss that joined a fill already running
  std::string key;
  int64_t created_ms = 0;
  int64_t expires_ms = 0;
  int64_t exec_ms = -1;    ///< known for hits (the cost recorded at fill time)
  std::string reason;      ///< why it is not cached, if it is not
  std::optional<OpenEntry> hit;
  std::shared_ptr<Fill> fill;  ///< misses and bypasses
  int reader = -1;             ///< this caller's reader id on `fill`
};

struct QueryStats {
  int64_t hits = 0, misses = 0, joins = 0, bypasses = 0, executions = 0, failures = 0,
          not_cached = 0, reclaimed = 0;
  std::map<std::string, int64_t> executions_by_key;
};

struct QueryCacheOptions {
  ObjectCache* objects = nullptr;
  std::map<std::string, std::shared_ptr<Source>> sources;
  std::shared_ptr<Clock> clock = Clock::System();
  /// Upper bound of any TTL. Default: 1 day.
  double max_ttl_s = 86400;
  /// Results larger than this stream to the client but are not cached. Default: 1 GiB.
  int64_t max_entry_bytes = int64_t{1} << 30;
  /// Cancel a fill when its last reader goes away. Default: false (it runs on and caches).
  bool cancel_unread_fills = false;
  /// How often expired results are reclaimed from storage. Default: 10 s.
  double reclaim_interval_s = 10;
};

class QueryCache {
 public:
  static arrow::Result<std::unique_ptr<QueryCache>> Make(QueryCacheOptions options);
  /// Cancels running fills and waits for their threads.
  ~QueryCache();

  /// \brief Interrupt every running execution (their readers get an error) and stop
  /// starting new ones. For server shutdown: readers blocked on a fill return at once.
  void Shutdown();
  /// \brief Wait up to `timeout_s` for execution threads to end (after Shutdown). False if
  /// some are still stuck in a database call that could not be interrupted.
  bool WaitForFills(double timeout_s);

  /// \brief Validate a request and compute its key, TTL and bypass decision.
  arrow::Result<QueryPlan> Plan(QueryRequest request) const;
  /// \brief Serve a planned request: a hit, a new or joined fill, or a bypass execution.
  /// The caller owns response.reader and must Detach it from response.fill when done.
  arrow::Result<QueryResponse> Execute(const QueryPlan& plan);

  /// \brief Delete expired results now. Returns how many were removed.
  arrow::Result<int64_t> ReclaimExpired();

  QueryStats Stats() const;
  const std::map<std::string, std::shared_ptr<Source>>& sources() const {
    return options_.sources;
  }

 private:
  explicit QueryCache(QueryCacheOptions options) : options_(std::move(options)) {}
  void StartFill(const QueryPlan& plan, std::shared_ptr<Fill> fill, bool cacheable,
                 int64_t created_ms);
  void RunFill(QueryPlan plan, std::shared_ptr<Fill> fill, bool cacheable, int64_t created_ms);
  void Unregister(const std::shared_ptr<Fill>& fill);
  void ReclaimLoop();

  QueryCacheOptions options_;

  mutable std::mutex mutex_;  // guards fills_, stats_
  std::map<std::string, std::shared_ptr<Fill>> fills_;
  QueryStats stats_;

  std::mutex threads_mutex_;
  std::condition_variable threads_cv_;
  int running_fills_ = 0;
  std::set<QueryStream*> running_streams_;      // cancelled on shutdown
  std::set<std::shared_ptr<Fill>> live_fills_;  // failed on shutdown
  std::atomic<bool> stopping_{false};
  std::thread reclaimer_;
};

/// \brief Lower-case hex SHA-256 of `text`.
std::string Sha256Hex(const std::string& text);

}  // namespace quiver
