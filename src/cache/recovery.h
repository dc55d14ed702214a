// Recovery: rebuild the index from what storage holds, at startup.
//
// Removes temporaries that writers left when the process died; loads every manifest;
// quarantines (moves under quarantine/, never serves) an entry whose manifest is
// unreadable or whose data blob is missing, has the wrong size or fails its checksum;
// deletes data blobs that no manifest references (a crash between committing the data
// and writing the manifest) -- or quarantines them too if some manifest was unreadable,
// since they may be that entry's data; and trims each key to the versions that are kept.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <arrow/status.h>

#include "index/index.h"
#include "storage/blob_store.h"

namespace quiver {

struct RecoverySummary {
  int64_t keys = 0;
  int64_t versions = 0;
  int64_t bytes = 0;
  int64_t temp_files_removed = 0;
  int64_t quarantined = 0;
  int64_t orphans_removed = 0;
  int64_t expired_removed = 0;
  int64_t elapsed_ms = 0;

  /// One line for the log.
  std::string ToString() const;
};

struct RecoveryOptions {
  bool verify_checksums = true;
  int64_t keep_versions = 3;
  /// Query results that expired by this time are deleted instead of restored.
  int64_t now_ms = 0;
};

/// \brief Rebuild `index` (which must be empty) from `store`. If `restored` is given, it
/// receives every version put back in the index.
arrow::Result<RecoverySummary> RecoverIndex(BlobStore* store, Index* index,
                                            const RecoveryOptions& options,
                                            std::vector<EntryMeta>* restored = nullptr);

}  // namespace quiver
