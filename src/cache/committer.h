// Committer: takes a finished entry (its data blob written) to publication -- the one
// sequence shared by object puts and query fills.
//
//   admit (could it ever fit?) -> make room (Evictor) -> publish (EntryStore, checked by the
//   index against the compare-and-set version, the generation snapshot, the fill lease and
//   the budget) -> retry if another writer took the room -> invalidate what the previous
//   version of an object fed (Invalidator).
//
// A refused entry's data blob is deleted; the error says why (version conflict, invalidated
// input, lost lease, not admitted).
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <arrow/result.h>

#include "cache/entry_store.h"
#include "cache/evictor.h"
#include "cache/invalidator.h"

namespace quiver {

struct CommitRequest {
  /// Compare-and-set: publish only over this version (0: the key must not exist).
  std::optional<uint64_t> if_version;
  /// ... and the latest version must still be this data blob (a patch's compare-and-set).
  std::optional<std::string> if_blob;
  /// Keys and tags the entry was computed from (stored in the entry; watched since `since`).
  std::vector<std::string> depends_on;
  std::vector<std::string> tags;
  /// Further generation names to watch (a fill watches its own key).
  std::vector<std::string> also_watched;
  GenerationSnapshot since;
  /// The fill lease the publish must still hold.
  std::optional<LeaseRef> lease;
  /// A new version of an object: what was computed from the previous one is invalidated.
  bool replaces = false;
  /// Keys never evicted to make room for this entry (a view keeps its source).
  std::vector<std::string> keep;
  int64_t keep_versions = 1;
};

class Committer {
 public:
  Committer(EntryStore* entries, Evictor* evictor, Invalidator* invalidator)
      : entries_(entries), evictor_(evictor), invalidator_(invalidator) {}

  /// \brief Publish `entry` (from EntryWriter::Finish) as its key's next version.
  arrow::Result<EntryMeta> Commit(EntryMeta entry, const CommitRequest& request);

 private:
  /// Make room and publish, retrying while others take the room. `*unclear`: see
  /// EntryStore::Publish (an error after which the files stay).
  arrow::Result<PublishOutcome> PublishWithRoom(EntryMeta* entry, const CommitRequest& request,
                                                bool* unclear);

  EntryStore* entries_;
  Evictor* evictor_;
  Invalidator* invalidator_;
};

/// \brief The error for a refused publish; RefusalOf() tells which refusal it was.
arrow::Status RefusalStatus(const PublishOutcome& outcome, const EntryMeta& entry,
                            const CommitRequest& request);
/// \brief Why the index refused to publish, if `status` is such a refusal.
std::optional<Refusal> RefusalOf(const arrow::Status& status);

}  // namespace quiver
