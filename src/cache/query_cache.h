// QueryCache: read-through caching of query results with single-flight fills, on one node or
// across the nodes of a cluster.
//
// A request names a source, SQL and parameters. Its cache key is the SHA-256 of the caller's
// scope, the source name, the normalized SQL and the parameters. A fresh entry under that key
// is a hit, served from the store. Otherwise one fill runs per key in the whole cache:
//
//   - a fill registered on this node (executing here, or following another node) is joined,
//     and read live from its first batch;
//   - else this node takes the key's fill lease (FillGroup) and executes the query: each batch
//     is encoded once and goes to the store and to every reader; the result is published with
//     the lease's fencing token and the generations it was computed from;
//   - else another node holds the lease: this node follows that fill -- streams it from the
//     filling node while it runs (a cross-node live join), or waits for it to be published
//     (told by the index's announcements, or by polling), and takes the fill over if the lease
//     expires without a result.
//
// On success the entry commits with its TTL; on failure or cancellation nothing is committed
// and the next request executes again.
//
// Freshness (query_refresh.cc): within a request's stale-while-revalidate window after expiry
// the expired result is served at once, marked stale, and one background refresh starts --
// an ordinary fill under the key's lease, so other requests and nodes join it rather than
// start another. On a fresh hit, XFetch (policy/early_refresh.h) may start the same kind of
// background refresh before expiry. A failed refresh leaves the stale result served until
// its window ends. Previews and non-deterministic queries (unless the
// request opts in) bypass the cache. When the index is unavailable and the node fails open,
// results are served from the store's manifests, and misses execute without being cached.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "cache/committer.h"
#include "cache/entry_store.h"
#include "cache/evictor.h"
#include "cache/fill.h"
#include "cache/fill_group.h"
#include "cache/invalidator.h"
#include "cache/peer_client.h"
#include "common/periodic.h"
#include "exec/source.h"
#include "policy/early_refresh.h"

namespace quiver {

struct QueryRequest {
  std::string source;
  std::string sql;
  /// JSON array of parameter values.
  std::string params_json = "[]";
  /// Requested TTL; the source's default when empty; capped at max_ttl_s.
  std::optional<double> ttl_s;
  /// Serve a result this long past its expiry, marked stale, while it is refreshed in the
  /// background; the source's stale_while_revalidate_s when empty; capped at the source's
  /// max_stale_while_revalidate_s.
  std::optional<double> stale_while_revalidate_s;
  bool preview = false;
  bool cache_nondeterministic = false;
  /// Whose cache this is; fixed until authentication exists, but already in the key.
  std::string scope = "anonymous";
  /// The tenant whose budget the result counts against (EntryMeta::tenant; "": none, as for
  /// a result shared by every tenant). Not part of the key: the scope is.
  std::string tenant;
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
  /// The stale-while-revalidate window, seconds (0: none).
  double stale_s = 0;
  /// XFetch's beta for early refreshes (0: none).
  double early_refresh_beta = 0;
  /// Why the request bypasses the cache ("preview", "non-deterministic: random()"), or
  /// empty if it is cacheable.
  std::string bypass_reason;
};

struct QueryResponse {
  enum class Kind { kHit, kMiss, kBypass };
  Kind kind = Kind::kMiss;
  bool joined = false;     ///< a miss that joined a fill already running (here or elsewhere)
  bool stale = false;      ///< a hit past its expiry, within the stale-while-revalidate window
  bool refreshing = false; ///< a hit while a background refresh of the key runs (any node)
  std::string key;
  std::string node;        ///< the node that computed the result (or is computing it)
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
  int64_t remote_joins = 0;  ///< fills of other nodes streamed live to this node's clients
  int64_t waits = 0;         ///< fills of other nodes waited for until they were published
  int64_t takeovers = 0;     ///< fills taken over after their node's lease expired
  int64_t fenced = 0;        ///< results not published: the fill lease was lost
  int64_t stale_hits = 0;    ///< expired results served within their stale window
  int64_t refreshes = 0;     ///< background refreshes started (stale or early) on this node
  int64_t early_refreshes = 0;  ///< of which chosen early by XFetch
  std::map<std::string, int64_t> executions_by_key;
};

struct QueryCacheOptions {
  EntryStore* entries = nullptr;
  Committer* committer = nullptr;
  Invalidator* invalidator = nullptr;
  Evictor* evictor = nullptr;
  FillGroup* fills = nullptr;
  /// Streams other nodes' fills (shared mode); null: wait for them to be published.
  PeerClient* peers = nullptr;
  std::map<std::string, std::shared_ptr<Source>> sources;
  std::shared_ptr<Clock> clock = Clock::System();
  /// Upper bound of any TTL. Default: 1 day.
  double max_ttl_s = 86400;
  /// Results larger than this stream to the client but are not cached. Default: 1 GiB.
  int64_t max_entry_bytes = int64_t{1} << 30;
  /// Bytes of a result a fill holds in memory, at most: for late joiners when its readers
  /// cannot read it from a local file, and for readers behind the query otherwise (see
  /// Fill). Default: 64 MiB.
  int64_t fill_memory_bytes = Fill::kDefaultMaxKeptBytes;
  /// Cancel a fill when its last reader goes away. Default: false (it runs on and caches).
  bool cancel_unread_fills = false;
  /// How often expired results are reclaimed from storage. Default: 10 s.
  double reclaim_interval_s = 10;
  /// How often a node waiting for another node's fill checks the index (announcements may
  /// be lost). Default: 200 ms.
  int64_t fill_poll_ms = 200;
  /// Draws of XFetch's uniform random number (tests fix the seed).
  UnitRandom random = DefaultUnitRandom();
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
  /// \brief Attach another node to the fill of `key` this node runs under lease `token`.
  arrow::Result<std::pair<std::shared_ptr<Fill>, int>> JoinForPeer(const std::string& key,
                                                                    uint64_t token);
  /// \brief Another node announced that the fill of query key `index_key` ended.
  void OnFillEnded(const std::string& index_key);
  /// \brief Wake every node-local waiter (after a reconnect that may have lost messages).
  void WakeWaiters();

  /// \brief Delete expired results now. Returns how many were removed.
  arrow::Result<int64_t> ReclaimExpired();

  QueryStats Stats() const;
  /// \brief Continue the counters (not executions_by_key) from a previous run's.
  void RestoreCounters(const QueryStats& saved);
  const std::map<std::string, std::shared_ptr<Source>>& sources() const {
    return options_.sources;
  }

 private:
  /// How following another node's fill ended: done; failed (the readers get its error);
  /// the node did not answer before anything was streamed; or it runs no fill this node
  /// can stream (it ended, or outgrew max_entry_bytes or what it keeps for joiners).
  enum class Follow { kDone, kFailed, kUnreachable, kNotJoinable };
  enum class Wait { kPublished, kLeaseFree, kNewHolder, kIndexAway, kStopped };

  explicit QueryCache(QueryCacheOptions options) : options_(std::move(options)) {}
  /// Serve from the store and execute uncached while the index is unavailable (else fail).
  bool FailOpen() const { return options_.entries->fail_open(); }
  std::mutex& KeyMutex(const std::string& key);
  /// A fresh stored result fills `response`; false if there is none. With `allow_stale`,
  /// so does an expired one within the plan's stale window (response->stale set).
  arrow::Result<bool> TryHit(const QueryPlan& plan, QueryResponse* response,
                             bool allow_stale = false);
  /// Serve from the fill registered on this node (or, once it finished, its published
  /// result); false if it can no longer be joined. REQUIRES: the key's lock held.
  bool JoinLocal(const QueryPlan& plan, const FillSlot& slot, QueryResponse* response);
  arrow::Result<QueryResponse> ExecuteBypass(const QueryPlan& plan);
  /// Start a fill for a miss: lead it, follow another node's, or run uncached.
  arrow::Status StartMiss(const QueryPlan& plan, bool index_available, QueryResponse* response);
  void StartThread(std::function<void()> body);

  // query_refresh.cc: stale-while-revalidate and early refresh.
  /// The latest result of `plan` if it is fresh or expired within the plan's stale window;
  /// std::nullopt if there is none.
  arrow::Result<std::optional<OpenEntry>> OpenStale(const QueryPlan& plan);
  /// After a stale hit, or a fresh one XFetch picked: start a background refresh unless
  /// one runs. True if a refresh of the key now runs (here or on another node).
  bool StartRefresh(const QueryPlan& plan, const EntryMeta& served, bool early);
  /// On a hit: refresh if it is stale, or if XFetch picks it; sets response->refreshing.
  void MaybeRefresh(const QueryPlan& plan, QueryResponse* response);
  /// How long past expiry a result of `meta`'s source is kept before it is reclaimed.
  int64_t StaleKeepMillis(const EntryMeta& meta) const;

  // query_fill.cc: executing a query into a fill (and the store).
  /// Execute into `fill`; store and publish the result if `lease` is given. `cacheable`:
  /// the request wanted caching (a result not stored counts as not cached).
  void RunLeader(const QueryPlan& plan, const std::shared_ptr<Fill>& fill,
                 std::optional<LeaseRef> lease, int64_t created_ms, bool cacheable);
  std::unique_ptr<EntryWriter> BeginEntry(const QueryPlan& plan, Fill* fill);
  void CommitResult(const QueryPlan& plan, const std::shared_ptr<Fill>& fill,
                    std::unique_ptr<EntryWriter> entry, const CommitRequest& request,
                    int64_t created_ms, int64_t exec_ms);
  /// End `fill` with `status` (what its readers see) and unregister it; with `lease`, tell
  /// the other nodes (their waiters look for the result).
  void EndFill(const QueryPlan& plan, const std::shared_ptr<Fill>& fill, arrow::Status status,
               const std::optional<LeaseRef>& lease = std::nullopt);
  std::string StopReason(Fill* fill, bool storing);
  /// Forget `fill` as a background refresh; true if it was one (its end is logged as such).
  bool EndRefresh(const std::shared_ptr<Fill>& fill);

  // query_follow.cc: following a fill another node runs.
  void RunFollower(const QueryPlan& plan, const std::shared_ptr<Fill>& fill, LeaseHolder holder,
                   int64_t created_ms);
  Follow Mirror(const QueryPlan& plan, Fill* fill, const LeaseHolder& holder,
                arrow::Status* failure);
  /// Pump the peer's stream into `fill`: kDone, kUnreachable if nothing reached the readers,
  /// or kFailed with *failure.
  Follow MirrorStream(const QueryPlan& plan, Fill* fill, PeerFill* peer,
                      const LeaseHolder& holder, arrow::Status* failure);
  Wait WaitForOther(const QueryPlan& plan, Fill* fill, LeaseHolder* holder,
                    std::optional<OpenEntry>* entry);
  /// How a follower answers the filling node refusing or failing the stream.
  Follow PeerRefused(const QueryPlan& plan, const LeaseHolder& holder,
                     const arrow::Status& status, arrow::Status* failure);
  /// The filling node's fill can no longer be streamed (past max_entry_bytes, or past what
  /// it keeps in memory for joiners): execute here, uncached.
  void RunUnjoinable(const QueryPlan& plan, const std::shared_ptr<Fill>& fill,
                     const LeaseHolder& holder, int64_t created_ms);
  /// The follower cannot learn the outcome of another node's fill: execute here, uncached
  /// (fail-open), or fail (fail-closed).
  void RunWithoutIndex(const QueryPlan& plan, const std::shared_ptr<Fill>& fill,
                       int64_t created_ms);
  /// True if a fresh result of `plan` is published.
  bool Published(const QueryPlan& plan);
  arrow::Status FeedStored(Fill* fill, const OpenEntry& entry);

  void Count(int64_t QueryStats::*field, int64_t n = 1);
  arrow::Result<int64_t> ReclaimExpiredAt(int64_t now);

  QueryCacheOptions options_;
  std::array<std::mutex, 64> key_mutexes_;

  mutable std::mutex stats_mutex_;
  QueryStats stats_;

  // Waiters for other nodes' fills, by key: how many wait, and the ends heard of.
  struct KeyWaits {
    int waiters = 0;
    uint64_t ends = 0;
  };
  std::mutex wait_mutex_;
  std::condition_variable wait_cv_;
  std::map<std::string, KeyWaits> waits_;
  uint64_t wake_all_ = 0;  // reconnects and shutdown: every waiter re-checks

  std::mutex threads_mutex_;
  std::condition_variable threads_cv_;
  int running_fills_ = 0;
  std::set<QueryStream*> running_streams_;      // cancelled on shutdown
  std::set<std::shared_ptr<Fill>> live_fills_;  // failed on shutdown
  std::set<std::shared_ptr<Fill>> refreshes_;   // background refreshes among them
  std::atomic<bool> stopping_{false};
  std::unique_ptr<PeriodicTask> reclaimer_;
};

/// \brief Lower-case hex SHA-256 of `text`.
std::string Sha256Hex(const std::string& text);

}  // namespace quiver
