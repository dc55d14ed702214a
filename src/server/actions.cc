#include "server/actions.h"

#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/config.h"
#include "server/action_body.h"
#include "server/artifact_request.h"
#include "server/entries_table.h"
#include "server/result_access.h"
#include "server/flame_protocol.h"
#include "server/query_command.h"
#include "server/tenant_scope.h"

namespace quiver {

using nlohmann::json;

namespace {

// The data cache of views (docs/views.md).
json ViewsJson(const DerivedStats& v) {
  return {{"hits", v.hits},
          {"derived", v.derived},
          {"stored", v.stored},
          {"not_stored", v.not_stored},
          {"failures", v.failures}};
}

// The node-local disk tier in front of an S3 store; null without one.
json DiskTierJson(const CacheStats& s) {
  if (!s.has_disk_tier) return nullptr;
  return {{"capacity", s.disk.capacity},   {"bytes", s.disk.bytes},
          {"entries", s.disk.entries},     {"hits", s.disk.hits},
          {"copies_made", s.disk.copies_made}, {"copy_failures", s.disk.copy_failures},
          {"damaged", s.disk.damaged}};
}

// How the index came back at startup (or at the last rebuild of a shared index).
json RecoveryJson(const RebuildSummary& r) {
  return {{"source", r.source},
          {"why", r.why},
          {"elapsed_ms", r.elapsed_ms},
          {"keys", r.keys},
          {"versions", r.versions},
          {"manifests_read", r.manifests_read},
          {"snapshot_rows", r.snapshot_rows},
          {"log_records", r.log_records},
          {"unsynced_checked", r.unsynced_checked},
          {"unsynced_dropped", r.unsynced_dropped},
          {"quarantined", r.quarantined}};
}

// When acknowledged writes reach the disk; null for a shared node (each write is durable
// when it returns).
json DurabilityJson(const Engine& engine) {
  const auto& syncer = engine.options().syncer;
  if (!syncer) return nullptr;
  auto st = syncer->stats();
  return {{"mode", DurabilityName(syncer->durability())},
          {"sync_interval_ms", syncer->interval().count()},
          {"syncs", st.syncs},
          {"grouped", st.waiters},
          {"failures", st.failures}};
}

json ArtifactsJson(const ArtifactStats& a) {
  return {{"hits", a.hits},
          {"misses", a.misses},
          {"joins", a.joins},
          {"fetches", a.source.fetches},
          {"failures", a.source.failures},
          {"busy", a.source.pool.busy},
          {"timeouts", a.source.pool.timeouts},
          {"in_flight", a.source.pool.running},
          {"queued", a.source.pool.queued}};
}

arrow::Result<json> StatsJson(Engine* engine) {
  ARROW_ASSIGN_OR_RAISE(auto s, engine->management()->Stats());
  auto q = engine->queries()->Stats();
  // Every stored byte counts against the budget: budget.used is `bytes`, kept in the budget
  // object because docs/management.md, `quiver stats` and scripts read it there.
  const int64_t stored = s.index.bytes;
  return json{
      {"node", s.node},
      {"index",
       {{"kind", s.index_kind},
        {"shared", s.shared},
        {"state", s.health.state},
        {"available", s.health.available},
        {"detail", s.health.detail}}},
      {"entries", s.index.keys},
      {"versions", s.index.versions},
      {"bytes", stored},
      {"puts", s.objects.puts},
      {"put_failures", s.objects.put_failures},
      {"gets", s.objects.gets},
      {"hits", s.objects.hits},
      {"misses", s.objects.misses},
      {"not_modified", s.objects.not_modified},
      {"evictions", s.evictions},
      {"invalidations", s.invalidations},
      {"not_admitted", s.not_admitted},
      {"reads_without_index", s.reads_without_index},
      {"damaged", s.damaged},
      {"budget",
       {{"policy", s.budget.policy},
        {"half_life", s.budget.half_life},
        {"cache_size", s.budget.cache_size},
        {"used", stored},
        {"max_entries", s.budget.max_entries},
        {"protect_s", s.budget.protect_s}}},
      {"memory",
       {{"capacity", s.memory.capacity},
        {"bytes", s.memory.bytes},
        {"entries", s.memory.entries},
        {"hits", s.memory.hits},
        {"promotions", s.memory.promotions}}},
      {"disk_tier", DiskTierJson(s)},
      {"recovery", RecoveryJson(engine->recovery())},
      {"durability", DurabilityJson(*engine)},
      {"queries",
       {{"hits", q.hits},
        {"misses", q.misses},
        {"joins", q.joins},
        {"bypasses", q.bypasses},
        {"executions", q.executions},
        {"failures", q.failures},
        {"not_cached", q.not_cached},
        {"reclaimed", q.reclaimed},
        {"remote_joins", q.remote_joins},
        {"waits", q.waits},
        {"takeovers", q.takeovers},
        {"fenced", q.fenced},
        {"stale_hits", q.stale_hits},
        {"refreshes", q.refreshes},
        {"early_refreshes", q.early_refreshes},
        {"executions_by_key", q.executions_by_key}}},
      {"artifacts", ArtifactsJson(engine->artifacts()->Stats())},
      {"views", ViewsJson(engine->views()->Stats())}};
}

// The caller's view of stored keys.
std::vector<std::string> ShowKeys(const TenantScope& scope, std::vector<std::string> keys) {
  for (auto& key : keys) key = scope.ShowKey(key);
  return keys;
}

// A tenant's stats: the index's totals of its own entries, objects and query results (the
// node's counters are not split by tenant), as its budget counts them, and its budget (null:
// none).
arrow::Result<json> TenantStatsJson(Engine* engine, const TenantScope& scope) {
  ARROW_ASSIGN_OR_RAISE(auto usage, engine->management()->TenantStats(scope.tenant()));
  json budget = nullptr;
  if (usage.budget) {
    budget = {{"cache_size", usage.budget->cache_size},
              {"max_entries", usage.budget->max_entries}};
  }
  return json{{"tenant", scope.tenant()},
              {"entries", usage.totals.keys},
              {"bytes", usage.totals.bytes},
              {"budget", budget}};
}

arrow::Result<json> ConfigJson(Engine* engine) {
  ARROW_ASSIGN_OR_RAISE(auto s, engine->management()->Stats());
  return json{{"half_life", s.budget.half_life},
              {"cache_size", s.budget.cache_size},
              {"memory_size", s.memory.capacity},
              {"policy", s.budget.policy},
              {"max_entries", s.budget.max_entries},
              {"protect_s", s.budget.protect_s}};
}

arrow::Result<std::string> DeleteAction(Engine* engine, const std::string& body,
                                        const TenantScope& scope) {
  ARROW_ASSIGN_OR_RAISE(auto text, ParseKeyBody(body));
  ARROW_ASSIGN_OR_RAISE(auto key, scope.Key(text));
  ARROW_ASSIGN_OR_RAISE(int64_t versions, engine->objects()->Delete(key));
  json deleted = json::array();
  if (versions > 0) deleted.push_back(scope.ShowKey(key.ToString()));
  spdlog::info("delete {}: {} versions", key.ToString(), versions);
  return json{{"deleted", deleted}, {"versions", versions}}.dump();
}

arrow::Result<std::string> DeletePrefixAction(Engine* engine, const std::string& body,
                                              const TenantScope& scope) {
  ARROW_ASSIGN_OR_RAISE(auto text, ParsePrefixBody(body));
  ARROW_ASSIGN_OR_RAISE(auto prefix, scope.Prefix(text));
  int64_t versions = 0;
  ARROW_ASSIGN_OR_RAISE(auto keys, engine->objects()->DeletePrefix(prefix, &versions));
  spdlog::info("delete-prefix {}: {} keys, {} versions", prefix, keys.size(), versions);
  return json{{"deleted", ShowKeys(scope, keys)}, {"versions", versions}}.dump();
}

arrow::Result<std::string> StatsAction(Engine* engine, const std::string&,
                                       const TenantScope& scope) {
  if (scope.scoped()) {
    ARROW_ASSIGN_OR_RAISE(auto stats, TenantStatsJson(engine, scope));
    return stats.dump();
  }
  ARROW_ASSIGN_OR_RAISE(auto stats, StatsJson(engine));
  return stats.dump();
}

arrow::Result<std::string> EntriesAction(Engine* engine, const std::string& body,
                                         const TenantScope& scope) {
  ARROW_ASSIGN_OR_RAISE(auto prefix, ParseEntriesBody(body));
  ARROW_ASSIGN_OR_RAISE(auto entries, engine->management()->Entries(scope.ListPrefix(prefix)));
  if (scope.scoped()) {
    for (auto& e : entries) {
      e.latest.key = scope.ShowKey(e.latest.key);
      for (auto& dep : e.latest.depends_on) dep = scope.ShowKey(dep);
      for (auto& tag : e.latest.tags) tag = scope.ShowTag(tag);
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto table, EntriesTable(entries));
  ARROW_ASSIGN_OR_RAISE(auto ipc, TableToIpc(*table));
  return ipc->ToString();
}

arrow::Result<std::string> ShrinkAction(Engine* engine, const std::string& body,
                                        const TenantScope& scope) {
  ARROW_ASSIGN_OR_RAISE(auto shrink, ParseShrinkBody(body));
  const auto& below = shrink.below_bytes;
  const bool dry_run = shrink.dry_run;
  ARROW_ASSIGN_OR_RAISE(auto removed, engine->management()->Shrink(below, dry_run));
  spdlog::info("shrink{}: {} keys{}", below ? " below " + FormatByteSize(*below) : " one",
               removed.size(), dry_run ? " (dry run)" : "");
  return json{{"removed", removed}, {"dry_run", dry_run}}.dump();
}

arrow::Result<std::string> InvalidateAction(Engine* engine, const std::string& body,
                                            const TenantScope& scope) {
  ARROW_ASSIGN_OR_RAISE(auto request, ParseInvalidateBody(body));
  std::string key = request.key;
  if (IsQueryKey(key)) {
    ARROW_RETURN_NOT_OK(CheckOwnResult(engine, scope, key));
  } else {
    ARROW_ASSIGN_OR_RAISE(auto stored, scope.Key(key));
    key = stored.ToString();
  }
  ARROW_ASSIGN_OR_RAISE(auto removed,
                        engine->management()->Invalidate(key, request.cascade));
  return json{{"removed", ShowKeys(scope, removed)}}.dump();
}

arrow::Result<std::string> InvalidateTagAction(Engine* engine, const std::string& body,
                                               const TenantScope& scope) {
  ARROW_ASSIGN_OR_RAISE(auto tag, ParseTagBody(body));
  ARROW_ASSIGN_OR_RAISE(auto removed, engine->management()->InvalidateTag(scope.Tag(tag)));
  return json{{"removed", ShowKeys(scope, removed)}}.dump();
}

arrow::Result<std::string> ArtifactFetchAction(Engine* engine, const std::string& body,
                                               const TenantScope& scope) {
  ARROW_ASSIGN_OR_RAISE(auto request, ParseScopedArtifactRequest(body, scope));
  ARROW_ASSIGN_OR_RAISE(auto fetched, engine->artifacts()->Fetch(request));
  return ArtifactFetchedJson(fetched);
}

arrow::Result<std::string> ConfigGetAction(Engine* engine, const std::string&,
                                           const TenantScope& scope) {
  ARROW_ASSIGN_OR_RAISE(auto config, ConfigJson(engine));
  return config.dump();
}

arrow::Result<std::string> ConfigSetAction(Engine* engine, const std::string& body,
                                           const TenantScope& scope) {
  ARROW_ASSIGN_OR_RAISE(auto settings, ParseConfigSetBody(body));
  ARROW_RETURN_NOT_OK(engine->management()->Configure(settings));
  spdlog::info("config-set {}", body);
  return ConfigGetAction(engine, "", scope);
}

struct ActionSpec {
  const char* name;
  const char* description;  ///< what ListActions says
  arrow::Result<std::string> (*run)(Engine* engine, const std::string& body,
                                    const TenantScope& scope);
  Role role;  ///< the role a caller needs (docs/security.md)
  const char* grant = nullptr;  ///< a source the caller must be granted (null: none)
};

const std::vector<ActionSpec>& Actions() {
  static const std::vector<ActionSpec> kActions = {
      {"delete",
       "Delete every version of one key. Body: {\"key\": \"s/o\"} or the key. "
       "Result: {\"deleted\": [keys], \"versions\": n}",
       DeleteAction, Role::kWriter},
      {"delete-prefix",
       "Delete every key under a whole-segment prefix, e.g. a session. "
       "Body: {\"prefix\": \"s\"} or the prefix. Result: {\"deleted\": [keys], \"versions\": n}",
       DeletePrefixAction, Role::kWriter},
      {"stats",
       "Cache statistics as JSON: this node and its index (kind, state), entries, bytes, puts, "
       "gets, hits, evictions, budget, memory tier, and queries (executions, "
       "executions_by_key, remote_joins, takeovers, ...)",
       StatsAction, Role::kReader},
      {"entries",
       "One row per key as an Arrow IPC stream: key, kind, version, bytes, rows, cost_s, "
       "created, last_access, accesses, score, expires, source, depends_on, tags, in_memory. "
       "Body: {\"prefix\": \"...\"} (optional)",
       EntriesAction, Role::kReader},
      {"shrink",
       "Evict by score. Body: {\"one\": true} or {\"below_bytes\": N, \"dry_run\": bool}. "
       "Result: {\"removed\": [keys], \"dry_run\": bool}",
       ShrinkAction, Role::kAdmin},
      {"invalidate",
       "Remove a key and (cascade, the default) everything derived from it. "
       "Body: {\"key\": K, \"cascade\": bool}. Result: {\"removed\": [keys]}",
       InvalidateAction, Role::kWriter},
      {"invalidate-tag",
       "Remove every key carrying a tag, cascading. Body: {\"tag\": T}. "
       "Result: {\"removed\": [keys]}",
       InvalidateTagAction, Role::kWriter},
      {"artifact-fetch",
       "Fetch an artifact into the cache and return once it is cached. "
       "Body: {\"artifact\": URL, \"format\": NAME, \"ttl_s\": n}. Result: {\"key\", "
       "\"cache\": \"hit\"|\"miss\"|\"joined\", \"rows\", \"bytes\", \"expires_ms\", "
       "\"mtime_ms\", \"size\", \"etag\" (when the source has one), ...}",
       ArtifactFetchAction, Role::kWriter, kArtifactsGrant},
      {"config-get", "Run-time settings as JSON: half_life, cache_size, memory_size, ...",
       ConfigGetAction, Role::kReader},
      {"config-set",
       "Change half_life, cache_size, memory_size (any subset); persisted. "
       "Body: {\"half_life\": n, \"cache_size\": bytes, \"memory_size\": bytes}",
       ConfigSetAction, Role::kAdmin},
  };
  return kActions;
}

arrow::Result<std::string> RunActionImpl(Engine* engine, const std::string& type,
                                         const std::string& body, const Identity& who) {
  for (const auto& action : Actions()) {
    if (type != action.name) continue;
    if (action.grant != nullptr) ARROW_RETURN_NOT_OK(RequireSource(who, action.grant));
    return action.run(engine, body, TenantScope::Of(who));
  }
  return arrow::Status::NotImplemented("unknown action '", type,
                                       "'; ListActions names the supported ones");
}

}  // namespace

Role ActionRole(const std::string& type) {
  for (const auto& action : Actions()) {
    if (type == action.name) return action.role;
  }
  return type == flame::kDeleteAction ? Role::kWriter : Role::kReader;
}

std::vector<arrow::flight::ActionType> ListedActions() {
  std::vector<arrow::flight::ActionType> listed;
  for (const auto& action : Actions()) listed.push_back({action.name, action.description});
  return listed;
}

arrow::Result<std::string> RunAction(Engine* engine, const std::string& type,
                                     const std::string& body, const Identity& who) {
  // JSON library errors must not escape a handler; they are a bad body.
  try {
    return RunActionImpl(engine, type, body, who);
  } catch (const json::exception& e) {
    return arrow::Status::Invalid("action body: ", e.what());
  }
}

}  // namespace quiver
