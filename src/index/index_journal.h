// IndexJournal: the embedded index, persisted as a snapshot plus a log of changes, so that a
// node restarts by reading one file and a short log instead of every manifest.
//
// Layout, in a directory of its own (<data dir>/.index/):
//   snapshot-<gen>-<xxh3>.arrow  every version the index held when generation <gen> began,
//                                as an Arrow IPC file (index/journal_snapshot.h); the name
//                                carries the XXH3-64 of the whole file, checked before it is
//                                trusted.
//   log-<gen>                    the changes since that snapshot: framed records
//                                (length, XXH3-64, payload) with consecutive sequence numbers.
//   damaged-<ms>/                what recovery set aside.
//
// The index appends a record for every change while it holds its own lock, so the log's
// order is the order of the changes. The records reach the page cache at once (a crash of the
// process loses nothing) and the disk with the data dir's flushes (storage/syncer.h); after
// each flush a "synced" record notes the last sequence number it covered, so recovery knows
// which entries were published after the last flush (their data may be torn by a power loss:
// the engine checks them).
//
// Checkpoint (at startup after a rebuild, in the background when the log grows past a bound,
// and at a clean shutdown): the index, under its lock, hands its state over and the journal
// starts log-<gen+1>; then, without the lock, the snapshot of <gen+1> is written and made
// durable, and the files of older generations are deleted. A crash at any step leaves a
// snapshot and the logs after it, which recovery replays in order.
//
// Anything damaged -- a snapshot that fails its checksum, a record that fails its checksum
// before the end of its log, a gap in the sequence numbers -- makes recovery set the whole
// journal aside and report that the index must be rebuilt from the manifests (which stay
// the source of truth). A record cut short at the very end of the last log is the write a
// crash interrupted: it was never acknowledged, and is dropped.
//
// Thread-safety: Append* and MarkSynced are safe to call concurrently with each other;
// Recover, Begin and FinishCheckpoint are called by one thread at a time (the engine).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <string_view>

#include <arrow/result.h>
#include <arrow/status.h>

#include "index/entry.h"
#include "index/journal_snapshot.h"

namespace quiver {

/// What recovery found.
struct JournalRecovery {
  /// True if a snapshot was found and read: `entries` is the index. False: the index must
  /// be rebuilt from the manifests (`why` says why; empty for a data dir without a journal).
  bool found = false;
  std::string why;
  /// Every version, by key then version.
  std::vector<RecoveredEntry> entries;
  /// (key, version) published after the last flush the log records: possibly torn by a
  /// power loss, to be checked against their data before they are served.
  std::vector<std::pair<std::string, uint64_t>> unsynced;
  uint64_t generation = 0;
  int64_t snapshot_rows = 0;
  int64_t log_records = 0;  ///< changes replayed (flush marks not counted)
  int64_t torn_bytes = 0;  ///< cut from the end of the last log
};

class IndexJournal {
 public:
  /// \brief Open (creating it if needed) the journal directory `dir`.
  static arrow::Result<std::unique_ptr<IndexJournal>> Open(const std::string& dir);
  ~IndexJournal();
  IndexJournal(const IndexJournal&) = delete;
  IndexJournal& operator=(const IndexJournal&) = delete;

  /// \brief Read the newest snapshot and replay the logs after it. Damage is set aside
  /// (moved to damaged-<ms>/) and reported as found = false. On success, appends continue the
  /// last log.
  arrow::Result<JournalRecovery> Recover();
  /// \brief Delete every snapshot and log (the index is to be rebuilt from the manifests).
  arrow::Status Discard();

  // --- records: called by the index while it holds its lock ------------------------------

  /// \brief `entry` was published; `dropped`: versions of its key removed with it.
  void AppendPublish(const EntryMeta& entry, const std::vector<uint64_t>& dropped);
  /// \brief Versions of `key` were removed (all of them for a removed key).
  void AppendDrop(const std::string& key, const std::vector<uint64_t>& versions);

  // --- checkpoints ---------------------------------------------------------------------------

  /// \brief Start a new generation: later records go to its log. The caller holds the
  /// index's lock (no record can be appended meanwhile) and adds every version to the
  /// returned writer, which streams them to a temporary file.
  arrow::Result<std::unique_ptr<SnapshotWriter>> BeginCheckpoint();
  /// \brief After the lock is released: make the snapshot durable under its final name and
  /// delete older generations. `flush` (may be empty) is called first: the data the
  /// snapshot names must be on disk before the snapshot is.
  arrow::Status FinishCheckpoint(std::unique_ptr<SnapshotWriter> writer,
                                 const std::function<arrow::Status()>& flush);

  // --- flushes ---------------------------------------------------------------------------------

  /// \brief The sequence number of the last record appended (a flush about to start covers it).
  uint64_t last_seq() const;
  /// \brief How many changes (publishes, removals) were appended since the journal opened.
  uint64_t changes() const;
  /// \brief A flush covering every record up to `seq` completed: log it.
  void MarkSynced(uint64_t seq);

  /// Bytes in the current log: the engine checkpoints when it grows past a bound.
  int64_t log_bytes() const;
  /// The first append error since the last checkpoint (records are then missing from the log:
  /// the next checkpoint repairs it); OK if none.
  arrow::Status append_error() const;
  const std::string& dir() const { return dir_; }

 private:
  explicit IndexJournal(std::string dir) : dir_(std::move(dir)) {}
  void AppendLocked(uint8_t type, const std::string& body);
  arrow::Status CreateLogLocked(uint64_t generation);
  arrow::Status SetAside(const std::string& why);

  const std::string dir_;
  mutable std::mutex mutex_;
  int log_fd_ = -1;
  uint64_t generation_ = 0;
  uint64_t seq_ = 0;
  uint64_t synced_marked_ = 0;
  uint64_t changes_ = 0;
  int64_t log_bytes_ = 0;
  arrow::Status append_error_;
};

/// \brief Encode and decode an entry as the journal does (exposed for tests).
std::string EncodeJournalEntry(const EntryMeta& entry);
arrow::Result<EntryMeta> DecodeJournalEntry(std::string_view bytes);

}  // namespace quiver
