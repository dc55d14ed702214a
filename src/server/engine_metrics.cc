#include "server/engine_metrics.h"

#include <initializer_list>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "cache/engine.h"

namespace quiver {

namespace {

using Labels = std::initializer_list<std::pair<const char*, std::string>>;

// Appends samples to `out`, one family per name (samples of one name stay together, as the
// exposition format requires).
class FamilyWriter {
 public:
  explicit FamilyWriter(std::vector<prometheus::MetricFamily>* out) : out_(out) {}

  void Counter(const char* name, const char* help, double value, Labels labels = {}) {
    Add(name, help, prometheus::MetricType::Counter, labels).counter.value = value;
  }
  void Gauge(const char* name, const char* help, double value, Labels labels = {}) {
    Add(name, help, prometheus::MetricType::Gauge, labels).gauge.value = value;
  }

 private:
  prometheus::ClientMetric& Add(const char* name, const char* help, prometheus::MetricType type,
                                Labels labels) {
    if (out_->empty() || out_->back().name != name) {
      prometheus::MetricFamily family;
      family.name = name;
      family.help = help;
      family.type = type;
      out_->push_back(std::move(family));
    }
    auto& metric = out_->back().metric.emplace_back();
    for (const auto& [label, value] : labels) metric.label.push_back({label, value});
    return metric;
  }

  std::vector<prometheus::MetricFamily>* out_;
};

void AppendLookups(const CacheStats& s, const QueryStats& q, const ArtifactStats& a,
                   FamilyWriter* w) {
  const char* name = "quiver_cache_requests_total";
  const char* help =
      "Reads the engine answered, by cache (object, query, artifact) and result (hit, miss, "
      "join: joined a running fill, bypass: not cacheable); the hit-ratio inputs";
  w->Counter(name, help, s.objects.hits, {{"cache", "object"}, {"result", "hit"}});
  w->Counter(name, help, s.objects.misses, {{"cache", "object"}, {"result", "miss"}});
  w->Counter(name, help, q.hits, {{"cache", "query"}, {"result", "hit"}});
  w->Counter(name, help, q.misses, {{"cache", "query"}, {"result", "miss"}});
  w->Counter(name, help, q.joins, {{"cache", "query"}, {"result", "join"}});
  w->Counter(name, help, q.bypasses, {{"cache", "query"}, {"result", "bypass"}});
  w->Counter(name, help, a.hits, {{"cache", "artifact"}, {"result", "hit"}});
  w->Counter(name, help, a.misses, {{"cache", "artifact"}, {"result", "miss"}});
  w->Counter(name, help, a.joins, {{"cache", "artifact"}, {"result", "join"}});
  w->Counter("quiver_object_not_modified_total",
             "Conditional object reads answered 'not modified'", s.objects.not_modified);
  w->Counter("quiver_object_puts_total", "Object puts, by result (ok: committed; failed)",
             s.objects.puts, {{"result", "ok"}});
  w->Counter("quiver_object_puts_total", "", s.objects.put_failures, {{"result", "failed"}});
}

void AppendFills(const QueryStats& q, const ArtifactStats& a, FamilyWriter* w) {
  w->Counter("quiver_fills_started_total",
             "Query executions this node started (a miss or a bypass runs the query once)",
             q.executions);
  w->Counter("quiver_fills_joined_total",
             "Requests that joined a fill already running on this node", q.joins);
  w->Counter("quiver_fills_failed_total", "Fills that ended with an error", q.failures);
  w->Counter("quiver_fills_not_cached_total",
             "Fills whose result was streamed but not stored (too large, bypass, refused)",
             q.not_cached);
  w->Counter("quiver_fills_remote_joined_total",
             "Fills of other nodes streamed live to this node's clients", q.remote_joins);
  w->Counter("quiver_fills_waited_total",
             "Fills of other nodes this node waited for until they were published", q.waits);
  w->Counter("quiver_fills_taken_over_total",
             "Fills taken over after their node's lease expired", q.takeovers);
  w->Counter("quiver_fills_fenced_total",
             "Results not published because their fill lease was lost", q.fenced);
  w->Counter("quiver_query_results_reclaimed_total",
             "Expired query results deleted from storage", q.reclaimed);
  w->Counter("quiver_artifact_fetches_started_total", "Artifact fetches started on a worker",
             a.source.fetches);
  w->Counter("quiver_artifact_fetch_failures_total",
             "Artifact fetches that failed (timeouts and busy refusals included)",
             a.source.failures);
  w->Gauge("quiver_artifact_fetches_running", "Artifact fetches on a worker now",
           a.source.pool.running);
  w->Gauge("quiver_artifact_fetches_queued", "Artifact fetches waiting for a worker now",
           a.source.pool.queued);
}

void AppendStorage(const CacheStats& s, FamilyWriter* w) {
  w->Gauge("quiver_stored_bytes", "Bytes of every kept version of every entry in the store",
           s.index.bytes);
  w->Gauge("quiver_stored_keys", "Keys (objects and query results) in the store", s.index.keys);
  w->Gauge("quiver_stored_versions", "Versions kept in the store", s.index.versions);
  w->Counter("quiver_evictions_total",
             "Keys this node evicted to make room (or by shrink)", s.evictions);
  w->Counter("quiver_invalidations_total",
             "Keys removed by invalidate, invalidate-tag and new versions", s.invalidations);
  w->Counter("quiver_not_admitted_total", "Entries the budget refused", s.not_admitted);
  w->Counter("quiver_damaged_total",
             "Stored entries that failed authentication, taken out of service", s.damaged);
  w->Counter("quiver_reads_without_index_total",
             "Reads served from the manifests while the index was unavailable",
             s.reads_without_index);

  const char* budget = "quiver_budget_bytes";
  const char* budget_help =
      "Capacity of each tier: store (the disk or S3 budget, cache_size), memory (the memory "
      "tier), disk (the node-local disk tier in front of an S3 store)";
  w->Gauge(budget, budget_help, s.budget.cache_size, {{"tier", "store"}});
  w->Gauge(budget, budget_help, s.memory.capacity, {{"tier", "memory"}});
  if (s.has_disk_tier) w->Gauge(budget, budget_help, s.disk.capacity, {{"tier", "disk"}});
  const char* used = "quiver_budget_used_bytes";
  const char* used_help = "Bytes each tier holds now";
  w->Gauge(used, used_help, s.index.bytes, {{"tier", "store"}});
  w->Gauge(used, used_help, s.memory.bytes, {{"tier", "memory"}});
  if (s.has_disk_tier) w->Gauge(used, used_help, s.disk.bytes, {{"tier", "disk"}});
  w->Gauge("quiver_budget_max_entries", "Keys the store may hold (0: no limit)",
           s.budget.max_entries);
  const char* entries = "quiver_tier_entries";
  const char* entries_help = "Entries each tier holds now";
  w->Gauge(entries, entries_help, s.index.keys, {{"tier", "store"}});
  w->Gauge(entries, entries_help, s.memory.entries, {{"tier", "memory"}});
  if (s.has_disk_tier) w->Gauge(entries, entries_help, s.disk.entries, {{"tier", "disk"}});
  const char* hits = "quiver_tier_hits_total";
  const char* hits_help = "Reads served from a node-local copy, by tier (memory, disk)";
  w->Counter(hits, hits_help, s.memory.hits, {{"tier", "memory"}});
  if (s.has_disk_tier) w->Counter(hits, hits_help, s.disk.hits, {{"tier", "disk"}});
}

}  // namespace

void AppendEngineFamilies(Engine* engine, std::vector<prometheus::MetricFamily>* out) {
  FamilyWriter w(out);
  auto stats = engine->management()->Stats();
  w.Gauge("quiver_stats_up", "1 if the engine reported its statistics at this scrape",
          stats.ok() ? 1 : 0);
  if (!stats.ok()) {
    spdlog::debug("metrics: engine statistics: {}", stats.status().ToString());
    return;
  }
  const CacheStats& s = *stats;
  w.Gauge("quiver_info", "Always 1; labels name the node and its index",
          1, {{"node", s.node}, {"index", s.index_kind}, {"shared", s.shared ? "true" : "false"}});
  w.Gauge("quiver_index_up", "1 if the index is available (state ok), 0 otherwise",
          s.health.available ? 1 : 0, {{"state", s.health.state}});
  const QueryStats q = engine->queries()->Stats();
  const ArtifactStats a = engine->artifacts()->Stats();
  AppendLookups(s, q, a, &w);
  AppendFills(q, a, &w);
  AppendStorage(s, &w);
}

}  // namespace quiver
