// Syncer: when a local data dir's writes reach the disk (the `durability` setting).
//
// Without a Syncer, LocalBlobStore makes every commit, move and delete durable before it
// returns (fsync of the file and of its directory: several disk flushes per put). With one,
// those calls only reach the page cache -- a crash of the process loses nothing, as the
// kernel has the bytes -- and the Syncer flushes the whole filesystem with one syncfs(2):
//
//   * kProcess: in the background, every `interval`, if anything was written since the last
//     flush. A power loss or kernel crash can lose what was acknowledged in the last interval.
//   * kFsync: Sync() returns once everything written before the call is on disk. Concurrent
//     callers share one flush (group commit): a caller that arrives while a flush runs waits
//     for the next one, which covers every caller that arrived meanwhile.
//
// Hooks let the index journal mark in its log which records each completed flush covers
// (index/index_journal.h), so that recovery knows which entries may be torn.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <arrow/result.h>
#include <arrow/status.h>

namespace quiver {

enum class Durability {
  kProcess,  ///< acknowledged writes survive a crash of the process; flushed in the background
  kFsync,    ///< acknowledged writes are on disk (group commit)
};

/// \brief "process" or "fsync"; the error names the bad value.
arrow::Result<Durability> ParseDurability(const std::string& text);
const char* DurabilityName(Durability durability);

struct SyncerStats {
  int64_t syncs = 0;     ///< syncfs calls made
  int64_t waiters = 0;   ///< Sync() calls that waited for one (kFsync)
  int64_t failures = 0;  ///< syncfs calls that failed
};

class Syncer {
 public:
  /// \brief Flush the filesystem holding `dir` as `durability` says; `interval` is the
  /// background period of kProcess (also used by kFsync as a safety net for writes nobody
  /// waited for, e.g. deletes).
  static arrow::Result<std::shared_ptr<Syncer>> Open(const std::string& dir,
                                                     Durability durability,
                                                     std::chrono::milliseconds interval);
  ~Syncer();
  Syncer(const Syncer&) = delete;
  Syncer& operator=(const Syncer&) = delete;

  /// \brief Something was written that is not on disk yet.
  void Dirty() { dirty_.store(true, std::memory_order_release); }
  /// \brief kFsync: return once everything written before this call is on disk (sharing
  /// the flush with concurrent callers). kProcess: returns at once.
  arrow::Status Sync();
  /// \brief Flush now, whatever the mode (shutdown, a snapshot that must be durable).
  arrow::Status SyncNow();

  /// \brief Called before each flush (returns a token) and after each successful one (with
  /// that token): whatever was written before `before` returned is now on disk.
  void SetHooks(std::function<uint64_t()> before, std::function<void(uint64_t)> after);

  Durability durability() const { return durability_; }
  std::chrono::milliseconds interval() const { return interval_; }
  SyncerStats stats() const;
  /// \brief Stop the background thread after a last flush. Idempotent.
  void Stop();

 private:
  Syncer(int fd, std::string dir, Durability durability, std::chrono::milliseconds interval);
  /// One flush as the group's leader; `lock` is held on entry and exit, released meanwhile.
  arrow::Status FlushLocked(std::unique_lock<std::mutex>* lock);
  void Loop();

  const int fd_;
  const std::string dir_;
  const Durability durability_;
  const std::chrono::milliseconds interval_;
  std::atomic<bool> dirty_{false};

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t requested_ = 0;  // Sync() calls so far
  uint64_t covered_ = 0;    // the requests the last completed flush covers
  bool flushing_ = false;
  arrow::Status last_error_;
  SyncerStats stats_;
  std::function<uint64_t()> before_;
  std::function<void(uint64_t)> after_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace quiver
