#include "cache/engine.h"

#include <malloc.h>

#include <chrono>
#include <thread>

#include <spdlog/spdlog.h>

#include "cache/lease_run.h"
#include "common/config.h"

namespace quiver {

namespace {

constexpr const char* kRebuildLease = "rebuild";
constexpr int64_t kRebuildLeaseTtlMs = 60 * 1000;

std::chrono::milliseconds Seconds(double s) {
  return std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
}

}  // namespace

// Index callbacks may arrive on the index's thread while the engine is being destroyed; they
// go through this, which the destructor disconnects.
struct EngineEvents {
  std::mutex mutex;
  std::function<void(const IndexEvent&)> on_event;
  std::function<void(bool)> on_connection;
};

arrow::Result<std::unique_ptr<Engine>> Engine::Open(EngineOptions options) {
  if (!options.store || !options.index || !options.clock) {
    return arrow::Status::Invalid("the engine needs a store, an index and a clock");
  }
  std::unique_ptr<Engine> engine(new Engine(std::move(options)));
  ARROW_RETURN_NOT_OK(engine->Build());
  ARROW_RETURN_NOT_OK(engine->RebuildIfNeeded(/*at_startup=*/true));
  engine->ApplyStoredSettings();
  // The limits may have been lowered since these entries were stored.
  auto evicted = engine->evictor_->FitToLimits();
  if (evicted.ok() && !evicted->empty()) {
    auto limits = engine->evictor_->settings();
    spdlog::info("evicted {} entries at startup to fit cache_size {} and max_entries {}",
                 evicted->size(), FormatByteSize(limits.cache_size), limits.max_entries);
  }
  engine->StartBackground();
  return engine;
}

void Engine::ApplyStoredSettings() {
  auto stored = management_->ReloadSettings();
  if (!stored.ok()) {
    spdlog::warn("run-time settings not applied: {}", stored.status().ToString());
    return;
  }
  if (!options_.index->shared() || stored->empty()) return;  // LocalState logged its own
  std::string text;
  for (const auto& [name, value] : *stored) text += (text.empty() ? "" : ", ") + name + "=" + value;
  spdlog::info("using settings saved by config-set (in the shared index): {}", text);
}

arrow::Status Engine::Build() {
  const auto& o = options_;
  // The node-local tiers evict by the cache's own policy.
  std::shared_ptr<const EvictionPolicy> policy;
  if (o.budget.policy == "lru") policy = std::make_shared<LruPolicy>();
  else policy = std::make_shared<CostAwarePolicy>(o.budget.half_life);
  memory_ = std::make_unique<MemoryTier>(o.memory_size, o.memory_max_entry_bytes, policy);
  std::shared_ptr<DiskTier> disk;
  if (o.disk_store && o.disk_size > 0) {
    disk = std::make_shared<DiskTier>(o.disk_store, o.disk_size, o.disk_max_entry_bytes,
                                      std::move(policy));
    ARROW_RETURN_NOT_OK(disk->Load());
  }
  entries_ = std::make_unique<EntryStore>(o.store, o.index, o.clock, o.node_id, memory_.get(),
                                          o.shared.fail_open, std::move(disk));
  if (o.syncer && o.syncer->durability() == Durability::kFsync) {
    entries_->SetSyncer(o.syncer.get());
  }
  ARROW_ASSIGN_OR_RAISE(evictor_, Evictor::Make(o.budget, entries_.get(), o.clock));
  invalidator_ = std::make_unique<Invalidator>(entries_.get());
  committer_ = std::make_unique<Committer>(entries_.get(), evictor_.get(), invalidator_.get());
  if (auto* embedded = dynamic_cast<EmbeddedIndex*>(o.index.get()); embedded && !o.index->shared()) {
    local_state_ = std::make_unique<LocalState>(o.store.get(), embedded, o.clock);
    ARROW_ASSIGN_OR_RAISE(auto saved, local_state_->LoadSettings());
    ARROW_RETURN_NOT_OK(o.index->SetSettings(saved.ToMap()));
  }
  objects_ = std::make_unique<ObjectCache>(o.objects, entries_.get(), committer_.get(),
                                           evictor_.get());
  management_ = std::make_unique<Management>(entries_.get(), evictor_.get(), invalidator_.get(),
                                             objects_.get(), local_state_.get());
  fills_ = std::make_unique<FillGroup>(o.index.get(), o.node_id, o.endpoint,
                                       o.shared.lease_ttl_ms);
  QueryCacheOptions q;
  q.entries = entries_.get();
  q.committer = committer_.get();
  q.invalidator = invalidator_.get();
  q.evictor = evictor_.get();
  q.fills = fills_.get();
  q.peers = o.shared.live_join ? o.peers.get() : nullptr;
  q.sources = o.sources;
  q.clock = o.clock;
  q.max_ttl_s = o.max_ttl_s;
  q.max_entry_bytes = o.max_entry_bytes;
  q.fill_memory_bytes = o.fill_memory_bytes;
  q.cancel_unread_fills = o.cancel_unread_fills;
  q.reclaim_interval_s = o.reclaim_interval_s;
  q.fill_poll_ms = o.shared.fill_poll_ms;
  if (o.random) q.random = o.random;
  ARROW_ASSIGN_OR_RAISE(queries_, QueryCache::Make(std::move(q)));
  artifacts_ = std::make_unique<ArtifactCache>(queries_.get(), entries_.get(), o.artifacts,
                                               o.max_ttl_s, o.max_entry_bytes);
  views_ = std::make_unique<DerivedCache>(entries_.get(), committer_.get(), objects_.get(), o.clock,
                                          o.max_entry_bytes);
  if (local_state_) {
    local_state_->SetCounters([this] { return Counters(); },
                              [this](const std::map<std::string, int64_t>& saved) {
                                RestoreCounters(saved);
                              });
  }
  // Blob times are the store's real ones, so the sweep goes by the real clock.
  sweeper_ = std::make_unique<GarbageSweeper>(
      o.store.get(), o.index.get(), Clock::System(), o.node_id,
      static_cast<int64_t>(o.shared.garbage_grace_s * 1000));
  return arrow::Status::OK();
}

arrow::Status Engine::Rebuild() {
  const auto& o = options_;
  RebuildOptions rebuild;
  rebuild.exclusive = !o.index->shared();
  // A shared index is rebuilt while every node waits for it: sizes only, as reading every
  // blob of the shared store would keep them waiting.
  rebuild.verify_checksums = o.verify_on_startup && rebuild.exclusive;
  rebuild.keep_versions = o.objects.keep_versions;
  rebuild.now_ms = o.clock->NowMillis();
  rebuild.scoring = evictor_->scoring();
  rebuild.grace_ms = static_cast<int64_t>(o.shared.garbage_grace_s * 1000);
  ARROW_ASSIGN_OR_RAISE(auto summary, RebuildIndex(o.store.get(), o.index.get(), rebuild));
  ARROW_RETURN_NOT_OK(o.index->MarkRebuilt());
  spdlog::info("{} {}: {}", o.index->shared() ? "rebuilt the shared index from" : "store",
               o.store->Describe(), summary.ToString());
  {
    std::lock_guard<std::mutex> lock(recovery_mutex_);
    recovery_ = summary;
  }
  if (local_state_) local_state_->LoadUsage();
  return arrow::Status::OK();
}

arrow::Status Engine::RebuildIfNeeded(bool at_startup) {
  Index* index = options_.index.get();
  if (at_startup && index->shared()) {
    // What this node's previous run left half-written; other nodes' writes run on. (An
    // embedded node's rebuild removes every temporary.)
    ARROW_RETURN_NOT_OK(options_.store->RemoveTemporaries(/*own=*/true, 0).status());
  }
  auto needs = index->NeedsRebuild();
  if (!needs.ok()) {
    if (!at_startup || !IsIndexUnavailable(needs.status())) return needs.status();
    spdlog::warn("index {} is unavailable at startup ({}); {} until it is back",
                 index->Describe(), needs.status().message(),
                 options_.shared.fail_open ? "serving what storage holds, queries uncached"
                                           : "requests fail with UNAVAILABLE");
    return arrow::Status::OK();
  }
  if (!*needs) return arrow::Status::OK();
  if (!index->shared()) return options_.journal ? RecoverFromJournal() : Rebuild();
  LeaseRunOptions lease;
  lease.name = kRebuildLease;
  lease.node = options_.node_id;
  lease.endpoint = options_.endpoint;
  lease.ttl_ms = kRebuildLeaseTtlMs;
  ARROW_ASSIGN_OR_RAISE(auto run, RunUnderLease(index, lease, [&](const LeaseRef&) {
    spdlog::warn("index {} holds no entries: rebuilding it from the manifests in {}",
                 index->Describe(), options_.store->Describe());
    auto st = Rebuild();
    if (st.IsCancelled()) {  // another node finished first: its index serves
      spdlog::info("{}", st.message());
      return arrow::Status::OK();
    }
    return st;
  }));
  if (run.ran) return arrow::Status::OK();
  if (!at_startup) return arrow::Status::OK();
  spdlog::info("waiting for {} to rebuild the index", run.holder.owner);
  const auto deadline = std::chrono::steady_clock::now() + Seconds(options_.shared.rebuild_wait_s);
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto still = index->NeedsRebuild();
    if (still.ok() && !*still) return arrow::Status::OK();
  }
  spdlog::warn("{} is still rebuilding the index; serving meanwhile", run.holder.owner);
  return arrow::Status::OK();
}

arrow::Status Engine::RecoverFromJournal() {
  const auto& o = options_;
  auto* embedded = dynamic_cast<EmbeddedIndex*>(o.index.get());
  if (!embedded) return arrow::Status::Invalid("an index journal needs the embedded index");
  auto start = std::chrono::steady_clock::now();
  if (o.rebuild_index) ARROW_RETURN_NOT_OK(o.journal->Discard());
  ARROW_ASSIGN_OR_RAISE(auto recovered, o.journal->Recover());
  if (o.rebuild_index) recovered.why = "asked to rebuild the index (--rebuild-index)";
  if (!recovered.found) {
    spdlog::info("index journal {}: {}; rebuilding the index from the manifests",
                 o.journal->dir(), recovered.why);
    ARROW_RETURN_NOT_OK(Rebuild());
    {
      std::lock_guard<std::mutex> lock(recovery_mutex_);
      recovery_.why = recovered.why;
    }
    embedded->AttachJournal(o.journal.get());
    journaled_ = embedded;
    return Checkpoint("after rebuilding the index");
  }
  RebuildSummary summary;
  summary.source = "journal";
  summary.snapshot_rows = recovered.snapshot_rows;
  summary.log_records = recovered.log_records;
  // Writes the previous run left half-done: never published, nothing refers to them.
  ARROW_ASSIGN_OR_RAISE(summary.temp_files_removed, o.store->RemoveAllTemporaries());
  // The access histories go in with the entries (one pass over the eviction queue).
  std::optional<UsageSnapshot> usage;
  if (local_state_) usage = local_state_->ReadUsage();
  ARROW_ASSIGN_OR_RAISE(
      int64_t restored,
      embedded->LoadRecovered(std::move(recovered.entries), evictor_->scoring(),
                              usage ? &*usage : nullptr));
  ARROW_RETURN_NOT_OK(embedded->MarkRebuilt());
  embedded->AttachJournal(o.journal.get());
  journaled_ = embedded;
  // Loading held every version once more than the index keeps: give what the allocator
  // holds from that back to the system.
  ::malloc_trim(0);
  CheckUnsynced(recovered.unsynced, &summary);
  clean_start_ = recovered.log_records == 0 && summary.unsynced_dropped == 0 &&
                 options_.journal->changes() == 0;
  ARROW_ASSIGN_OR_RAISE(auto stats, embedded->Stats());
  summary.keys = stats.keys;
  summary.versions = stats.versions;
  summary.bytes = stats.bytes;
  summary.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count();
  spdlog::info("store {}: {}", o.store->Describe(), summary.ToString());
  if (recovered.torn_bytes > 0) {
    spdlog::warn("index journal: dropped {} bytes of a record cut short at the end of its log "
                 "(a write the previous run did not finish; it was never acknowledged)",
                 recovered.torn_bytes);
  }
  {
    std::lock_guard<std::mutex> lock(recovery_mutex_);
    recovery_ = summary;
  }
  if (local_state_) local_state_->UsageLoaded(usage ? &*usage : nullptr, restored);
  return arrow::Status::OK();
}

void Engine::CheckUnsynced(const std::vector<std::pair<std::string, uint64_t>>& unsynced,
                           RebuildSummary* summary) {
  for (const auto& [key, version] : unsynced) {
    auto meta = options_.index->Get(key, version);
    if (!meta.ok() || !*meta) continue;
    ++summary->unsynced_checked;
    auto checked = entries_->CheckStored(**meta);
    if (checked.ok()) {
      if (*checked) ++summary->manifests_rewritten;
      continue;
    }
    ++summary->unsynced_dropped;
    entries_->TakeOutOfService(**meta, checked.status());
  }
}

arrow::Status Engine::Checkpoint(const char* why) {
  if (!journaled_) return arrow::Status::OK();
  auto start = std::chrono::steady_clock::now();
  std::shared_ptr<Syncer> syncer = options_.syncer;
  auto st = journaled_->Checkpoint([syncer]() -> arrow::Status {
    return syncer ? syncer->SyncNow() : arrow::Status::OK();
  });
  if (!st.ok()) return st.WithMessage("writing the index journal's snapshot ", why, ": ", st.message());
  auto stats = journaled_->Stats();
  spdlog::info("index journal: wrote a snapshot of {} versions {} in {} ms",
               stats.ok() ? stats->versions : -1, why,
               std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count());
  return arrow::Status::OK();
}

void Engine::StartBackground() {
  const auto& o = options_;
  if (journaled_) {
    if (o.syncer) {
      std::shared_ptr<IndexJournal> journal = o.journal;
      o.syncer->SetHooks([journal] { return journal->last_seq(); },
                         [journal](uint64_t seq) { journal->MarkSynced(seq); });
    }
    checkpointer_ = std::make_unique<PeriodicTask>(
        "index checkpoint", std::chrono::milliseconds(1000), [this] {
          const bool grown = options_.journal->log_bytes() > options_.index_log_bytes;
          const bool broken = !options_.journal->append_error().ok();
          if (!grown && !broken) return;
          auto st = Checkpoint(grown ? "as its log grew past index_log_bytes"
                                     : "after an append to its log failed");
          if (!st.ok()) spdlog::error("{}", st.ToString());
        });
  }
  if (local_state_) {
    usage_saver_ = std::make_unique<PeriodicTask>(
        "usage saver", Seconds(o.usage_save_interval_s), [this] {
          auto st = SaveLocalState();
          if (!st.ok()) spdlog::warn("saving access histories: {}", st.ToString());
        });
  }
  sweep_task_ = std::make_unique<PeriodicTask>(
      "garbage sweep", Seconds(o.shared.sweep_interval_s), [this] {
        auto swept = sweeper_->Sweep();
        if (!swept.ok() && !IsIndexUnavailable(swept.status())) {
          spdlog::warn("garbage sweep: {}", swept.status().ToString());
        }
      });
  if (!o.index->shared()) return;
  watchdog_ = std::make_unique<PeriodicTask>("index watchdog", std::chrono::milliseconds(1000),
                                             [this] { Watch(); });
  events_ = std::make_shared<EngineEvents>();
  events_->on_event = [this](const IndexEvent& event) { OnEvent(event); };
  events_->on_connection = [this](bool resubscribed) { OnConnection(resubscribed); };
  o.index->Subscribe(
      [events = events_](const IndexEvent& event) {
        std::lock_guard<std::mutex> lock(events->mutex);
        if (events->on_event) events->on_event(event);
      },
      [events = events_](bool resubscribed) {
        std::lock_guard<std::mutex> lock(events->mutex);
        if (events->on_connection) events->on_connection(resubscribed);
      });
}

void Engine::OnEvent(const IndexEvent& event) {
  if (event.node == options_.node_id) return;  // this node acted on it already
  switch (event.kind) {
    case IndexEvent::Kind::kRemoved:
      for (const auto& blob : event.blobs) {
        memory_->Erase(event.key, blob);
        if (entries_->disk()) entries_->disk()->Erase(blob);
      }
      break;
    case IndexEvent::Kind::kFillEnded:
      queries_->OnFillEnded(event.key);
      break;
    case IndexEvent::Kind::kSettings: {
      auto st = management_->ReloadSettings().status();
      if (!st.ok()) spdlog::warn("applying settings changed by {}: {}", event.node, st.ToString());
      break;
    }
  }
}

void Engine::OnConnection(bool resubscribed) {
  if (!resubscribed) return;
  // The server may have come back empty: check (and rebuild) now, not at the next tick.
  if (watchdog_) watchdog_->Wake();
  // Announcements may have been missed while disconnected.
  Revalidate();
  auto st = management_->ReloadSettings().status();
  if (!st.ok()) spdlog::debug("reloading settings after a reconnect: {}", st.ToString());
  queries_->WakeWaiters();
}

void Engine::Revalidate() {
  auto copies = memory_->Copies();
  if (copies.empty()) return;
  std::vector<std::pair<std::string, uint64_t>> lookups;
  for (const auto& copy : copies) lookups.emplace_back(copy.key, copy.version);
  auto current = options_.index->GetMany(lookups);
  if (!current.ok()) return;  // still away: the hit path checks the index anyway
  int64_t dropped = 0;
  for (size_t i = 0; i < copies.size(); ++i) {
    const auto& entry = (*current)[i];
    if (entry && entry->blob == copies[i].blob) continue;
    memory_->Erase(copies[i].key, copies[i].blob);
    ++dropped;
  }
  spdlog::info("checked {} memory copies against the index after a reconnect; dropped {}",
               copies.size(), dropped);
}

void Engine::Watch() {
  auto st = RebuildIfNeeded(/*at_startup=*/false);
  if (!st.ok() && !IsIndexUnavailable(st)) spdlog::warn("index watchdog: {}", st.ToString());
}

namespace {

// The counters `stats` shows that survive restarts, by the name they are saved under.
constexpr std::pair<const char*, int64_t ObjectStats::*> kObjectCounters[] = {
    {"puts", &ObjectStats::puts},     {"put_failures", &ObjectStats::put_failures},
    {"gets", &ObjectStats::gets},     {"hits", &ObjectStats::hits},
    {"misses", &ObjectStats::misses}, {"not_modified", &ObjectStats::not_modified}};
constexpr std::pair<const char*, int64_t QueryStats::*> kQueryCounters[] = {
    {"queries.hits", &QueryStats::hits},
    {"queries.misses", &QueryStats::misses},
    {"queries.joins", &QueryStats::joins},
    {"queries.bypasses", &QueryStats::bypasses},
    {"queries.executions", &QueryStats::executions},
    {"queries.failures", &QueryStats::failures},
    {"queries.not_cached", &QueryStats::not_cached},
    {"queries.reclaimed", &QueryStats::reclaimed},
    {"queries.remote_joins", &QueryStats::remote_joins},
    {"queries.waits", &QueryStats::waits},
    {"queries.takeovers", &QueryStats::takeovers},
    {"queries.fenced", &QueryStats::fenced},
    {"queries.stale_hits", &QueryStats::stale_hits},
    {"queries.refreshes", &QueryStats::refreshes},
    {"queries.early_refreshes", &QueryStats::early_refreshes}};

}  // namespace

std::map<std::string, int64_t> Engine::Counters() const {
  std::map<std::string, int64_t> out;
  const auto objects = objects_->Stats();
  for (const auto& [name, field] : kObjectCounters) out[name] = objects.*field;
  const auto queries = queries_ ? queries_->Stats() : final_query_stats_;
  for (const auto& [name, field] : kQueryCounters) out[name] = queries.*field;
  out["evictions"] = evictor_->evictions();
  out["not_admitted"] = evictor_->not_admitted();
  out["invalidations"] = invalidator_->invalidations();
  return out;
}

void Engine::RestoreCounters(const std::map<std::string, int64_t>& saved) {
  auto get = [&](const char* name) {
    auto it = saved.find(name);
    return it == saved.end() ? 0 : it->second;
  };
  ObjectStats objects;
  for (const auto& [name, field] : kObjectCounters) objects.*field = get(name);
  objects_->RestoreCounters(objects);
  QueryStats queries;
  for (const auto& [name, field] : kQueryCounters) queries.*field = get(name);
  queries_->RestoreCounters(queries);
  evictor_->RestoreCounts(get("evictions"), get("not_admitted"));
  invalidator_->RestoreCount(get("invalidations"));
}

arrow::Status Engine::CheckpointAtShutdown() {
  if (!journaled_) return arrow::Status::OK();
  if (checkpointer_) checkpointer_->Stop();
  // Started from a snapshot and an empty log, and nothing changed: it is still exact.
  if (options_.journal->changes() == 0 && clean_start_) return arrow::Status::OK();
  ARROW_RETURN_NOT_OK(Checkpoint("at shutdown"));
  checkpointed_changes_ = options_.journal->changes();
  return arrow::Status::OK();
}

arrow::Status Engine::SaveLocalState() {
  return local_state_ ? local_state_->SaveUsage() : arrow::Status::OK();
}

void Engine::Shutdown() {
  artifacts_->Shutdown();  // fetches waiting for a worker end now
  queries_->Shutdown();
  fills_->Stop();
  for (auto* task : {watchdog_.get(), sweep_task_.get(), usage_saver_.get(), checkpointer_.get()}) {
    if (task) task->Stop();
  }
}

Engine::~Engine() {
  if (events_) {
    std::lock_guard<std::mutex> lock(events_->mutex);
    events_->on_event = nullptr;
    events_->on_connection = nullptr;
  }
  for (auto* task : {watchdog_.get(), sweep_task_.get(), usage_saver_.get(), checkpointer_.get()}) {
    if (task) task->Stop();
  }
  if (artifacts_) artifacts_->Shutdown();
  if (queries_) {
    queries_->Shutdown();
    queries_->WaitForFills(60);
    final_query_stats_ = queries_->Stats();  // saved below, after the query cache is gone
  }
  queries_.reset();  // waits for fills
  if (fills_) fills_->Stop();
  auto st = SaveLocalState();
  if (!st.ok()) spdlog::warn("saving access histories: {}", st.ToString());
  // A clean stop leaves a snapshot and an empty log: the next start reads one file.
  if (journaled_ && options_.journal->changes() != checkpointed_changes_ &&
      !(options_.journal->changes() == 0 && clean_start_)) {
    st = Checkpoint("at shutdown");
    if (!st.ok()) spdlog::error("{}", st.ToString());
  }
  if (options_.syncer) {
    options_.syncer->SetHooks(nullptr, nullptr);
    options_.syncer->Stop();
  }
}

}  // namespace quiver
