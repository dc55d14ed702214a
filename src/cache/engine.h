// Engine: composes the cache's parts and hands them to the fronts -- the one place that knows
// them all (as groupcache composes an LRU and a single-flight group).
//
//   EntryStore   blobs + manifests + index publication + memory tier      entry_store.h
//   Evictor      the budget: make room, shrink, scores                    evictor.h
//   Invalidator  cascades over dependencies and tags                      invalidator.h
//   Committer    admit -> make room -> publish -> invalidate dependents   committer.h
//   FillGroup    single flight: local fills + the index's fill leases     fill_group.h
//   fronts       ObjectCache, QueryCache, ArtifactCache, DerivedCache (views), Management
//   background   garbage sweep, usage saves (embedded), index watchdog (shared), TTL reclaim
//
// Open() loads the embedded index from its journal (index/index_journal.h), or rebuilds the
// index from storage when it must (an embedded index without a usable journal; a shared one
// that came back empty, under the index lease "rebuild" so one node does it).
// In shared mode the engine listens to the other nodes' announcements: removals drop memory
// copies, ended fills wake waiters, new settings are applied; after a reconnect (messages may
// have been lost) memory copies are checked against the index.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <arrow/result.h>

#include "cache/artifact_cache.h"
#include "cache/committer.h"
#include "cache/derived_cache.h"
#include "cache/entry_store.h"
#include "cache/evictor.h"
#include "cache/fill_group.h"
#include "cache/garbage_sweeper.h"
#include "cache/index_rebuilder.h"
#include "cache/invalidator.h"
#include "cache/local_state.h"
#include "cache/management.h"
#include "cache/memory_tier.h"
#include "cache/object_cache.h"
#include "cache/query_cache.h"
#include "common/periodic.h"
#include "index/index_journal.h"
#include "storage/syncer.h"

namespace quiver {

struct EngineEvents;

/// What many nodes sharing an index need to agree on.
struct SharedOptions {
  /// Fill leases expire this long after their last renewal. Default: 10 s.
  int64_t lease_ttl_ms = 10000;
  /// A node waiting for another node's fill checks the index this often. Default: 200 ms.
  int64_t fill_poll_ms = 200;
  /// Stream other nodes' fills live (else wait for their results). Default: true.
  bool live_join = true;
  /// While the index is unavailable: serve what storage holds and execute queries uncached
  /// (true), or fail requests with UNAVAILABLE (false). Default: true.
  bool fail_open = true;
  /// Unreferenced blobs younger than this are never swept. Default: 1 h.
  double garbage_grace_s = 3600;
  /// Seconds between garbage sweeps; 0: none. Default: 600.
  double sweep_interval_s = 600;
  /// At startup, how long to wait for another node rebuilding the index. Default: 60 s.
  double rebuild_wait_s = 60;
};

struct EngineOptions {
  std::shared_ptr<BlobStore> store;
  std::shared_ptr<Index> index;
  std::shared_ptr<Clock> clock = Clock::System();
  /// This node's id (in logs, leases, blob names) and where other nodes reach it.
  std::string node_id = "local";
  std::string endpoint;
  ObjectCacheOptions objects;
  /// Check every entry's checksum when rebuilding the index. Default: true.
  bool verify_on_startup = true;
  BudgetSettings budget;
  /// Bytes of the memory tier; 0 disables it. Default: 0.
  int64_t memory_size = 0;
  /// Largest entry the memory tier takes; 0: memory_size / 8.
  int64_t memory_max_entry_bytes = 0;
  /// Node-local disk tier in front of a shared `store` (S3): where its copies live (null:
  /// none), its bytes, and the largest entry it copies (0: disk_size / 8).
  std::shared_ptr<BlobStore> disk_store;
  int64_t disk_size = 0;
  int64_t disk_max_entry_bytes = 0;
  /// Seconds between saves of the access histories (embedded index); 0: only at close.
  double usage_save_interval_s = 30;
  // Queries.
  std::map<std::string, std::shared_ptr<Source>> sources;
  /// Artifact fetches (null: artifact requests are refused).
  std::shared_ptr<ArtifactSource> artifacts;
  double max_ttl_s = 86400;
  int64_t max_entry_bytes = int64_t{1} << 30;
  /// See QueryCacheOptions::fill_memory_bytes.
  int64_t fill_memory_bytes = Fill::kDefaultMaxKeptBytes;
  bool cancel_unread_fills = false;
  double reclaim_interval_s = 10;
  /// XFetch's random draws (empty: seeded from std::random_device); tests fix the seed.
  UnitRandom random;
  SharedOptions shared;
  /// Embedded index: its snapshot and log in the data dir (null: rebuilt from the manifests
  /// at every start), and the log size past which a new snapshot is written.
  std::shared_ptr<IndexJournal> journal;
  int64_t index_log_bytes = int64_t{64} << 20;
  /// Discard the journal and rebuild from the manifests at this start.
  bool rebuild_index = false;
  /// The data dir's flushes (the `durability` setting; null: every write is durable when
  /// it returns). With kFsync, puts and deletes wait for one before they are acknowledged.
  std::shared_ptr<Syncer> syncer;
  /// Streams other nodes' fills (shared mode, with live_join); may be null.
  std::shared_ptr<PeerClient> peers;
};

class Engine {
 public:
  static arrow::Result<std::unique_ptr<Engine>> Open(EngineOptions options);
  /// Stops background work and saves what an embedded node keeps in its data dir.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  ObjectCache* objects() { return objects_.get(); }
  QueryCache* queries() { return queries_.get(); }
  ArtifactCache* artifacts() { return artifacts_.get(); }
  /// Slices, projections and encodings of cached entries (the data cache).
  DerivedCache* views() { return views_.get(); }
  Management* management() { return management_.get(); }
  // The parts, for tests and tools.
  EntryStore* entries() { return entries_.get(); }
  Committer* committer() { return committer_.get(); }
  Invalidator* invalidator() { return invalidator_.get(); }
  /// The last rebuild of the index from storage (empty if none was needed).
  /// What the last rebuild of the index found (a copy: a shared node may rebuild again).
  RebuildSummary recovery() const {
    std::lock_guard<std::mutex> lock(recovery_mutex_);
    return recovery_;
  }
  const EngineOptions& options() const { return options_; }

  /// \brief Stop queries and background work (server shutdown); saves local state.
  void Shutdown();
  /// \brief Save the access histories (embedded index). Also periodic and at close.
  arrow::Status SaveLocalState();
  /// \brief Write the index journal's snapshot (embedded index), so that the next start
  /// reads one file and an empty log. Also done when the engine is destroyed, unless done
  /// here and nothing changed since.
  arrow::Status CheckpointAtShutdown();
  /// \brief The counters `stats` shows that an embedded node keeps across restarts.
  std::map<std::string, int64_t> Counters() const;
  /// \brief Add a previous run's counters (as Counters() returned them) to this run's.
  void RestoreCounters(const std::map<std::string, int64_t>& saved);
  /// \brief Sweep garbage now (also periodic).
  arrow::Result<SweepSummary> SweepGarbage() { return sweeper_->Sweep(); }

 private:
  explicit Engine(EngineOptions options) : options_(std::move(options)) {}
  arrow::Status Build();
  /// Apply the run-time settings stored in the index (config-set) over the configured ones.
  void ApplyStoredSettings();
  /// Rebuild the index from storage if it needs it (under the "rebuild" lease).
  arrow::Status RebuildIfNeeded(bool at_startup);
  arrow::Status Rebuild();
  /// Embedded index with a journal: load it, or rebuild from the manifests and start one.
  arrow::Status RecoverFromJournal();
  /// Check the entries a journal says were published after the last flush.
  void CheckUnsynced(const std::vector<std::pair<std::string, uint64_t>>& unsynced,
                     RebuildSummary* summary);
  /// Write the index journal's next snapshot (embedded index).
  arrow::Status Checkpoint(const char* why);
  void StartBackground();
  void OnEvent(const IndexEvent& event);
  void OnConnection(bool resubscribed);
  /// Drop memory copies the index no longer publishes.
  void Revalidate();
  void Watch();

  EngineOptions options_;
  mutable std::mutex recovery_mutex_;
  RebuildSummary recovery_;  // guarded by recovery_mutex_
  std::unique_ptr<MemoryTier> memory_;
  std::unique_ptr<EntryStore> entries_;
  std::unique_ptr<Evictor> evictor_;
  std::unique_ptr<Invalidator> invalidator_;
  std::unique_ptr<Committer> committer_;
  std::unique_ptr<LocalState> local_state_;
  std::unique_ptr<ObjectCache> objects_;
  std::unique_ptr<Management> management_;
  std::unique_ptr<FillGroup> fills_;
  std::unique_ptr<QueryCache> queries_;
  std::unique_ptr<ArtifactCache> artifacts_;
  std::unique_ptr<DerivedCache> views_;
  std::unique_ptr<GarbageSweeper> sweeper_;
  std::unique_ptr<PeriodicTask> usage_saver_, sweep_task_, watchdog_, checkpointer_;
  EmbeddedIndex* journaled_ = nullptr;  // the index once its journal is attached
  QueryStats final_query_stats_;        // the query cache's, as it was closed
  uint64_t checkpointed_changes_ = ~uint64_t{0};  // the journal's at CheckpointAtShutdown
  bool clean_start_ = false;  // loaded a snapshot with an empty log, changed nothing since
  std::shared_ptr<EngineEvents> events_;
};

}  // namespace quiver
