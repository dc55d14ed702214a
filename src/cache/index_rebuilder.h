// Rebuilding the index from what storage holds: at every start of an embedded node, and in
// shared mode when the index comes back empty (a Redis restarted without persistence).
//
// Reads every manifest and puts the newest versions of each key back in the index, in the
// order they were created (so that recency starts out as creation order). An entry whose
// manifest is unreadable, names another key or version than its file name, or whose data
// blob is missing, has the wrong size or fails its checksum is quarantined: moved under
// quarantine/, never served. Versions beyond those kept, and expired query results, are
// deleted (a crash between publishing and trimming can leave one). Where several manifests
// claim one version (a writer that lost a race and crashed before removing its manifest), the
// earliest created is taken and the others are left to the garbage sweep.
//
// It never deletes a blob it merely does not know: data no manifest references may be
// another node's write in progress, and goes only through the garbage sweep's grace period.
#pragma once

#include <cstdint>
#include <string>

#include <arrow/result.h>

#include "index/index.h"
#include "storage/blob_store.h"

namespace quiver {

struct RebuildSummary {
  int64_t keys = 0;
  int64_t versions = 0;
  int64_t bytes = 0;
  int64_t temp_files_removed = 0;
  int64_t quarantined = 0;
  int64_t expired_removed = 0;
  int64_t superseded = 0;    ///< manifests of a version another manifest won
  int64_t unreferenced = 0;  ///< data blobs no manifest names, left for the garbage sweep
  int64_t elapsed_ms = 0;
  /// Where the index came from: "manifests" (a rebuild) or "journal" (the embedded index's
  /// snapshot and log, index/index_journal.h), and for a rebuild why the journal was not
  /// used ("" for a shared index).
  std::string source = "manifests";
  std::string why;
  int64_t manifests_read = 0;
  int64_t snapshot_rows = 0;
  int64_t log_records = 0;
  /// Journal: entries published after the last flush, checked against their data, and
  /// those that failed (taken out of service) or had lost their manifest (written again).
  int64_t unsynced_checked = 0;
  int64_t unsynced_dropped = 0;
  int64_t manifests_rewritten = 0;

  /// One line for the log.
  std::string ToString() const;
};

struct RebuildOptions {
  bool verify_checksums = true;
  int64_t keep_versions = 3;
  /// Query results that expired by this time are deleted instead of restored.
  int64_t now_ms = 0;
  ScoringPolicy scoring;
  /// This process owns the store alone: every temporary is debris of a crash (otherwise
  /// none is touched), and every unreferenced blob is settled.
  bool exclusive = true;
  /// Shared stores: data blobs younger than this may be in-flight writes of other nodes.
  int64_t grace_ms = 3600 * 1000;
};

/// \brief Put what `store` holds back into `index` (which must hold nothing yet, or be
/// known stale). Does not mark the index rebuilt.
arrow::Result<RebuildSummary> RebuildIndex(BlobStore* store, Index* index,
                                           const RebuildOptions& options);

}  // namespace quiver
