// Object patches: a version that stores only the rows it appends to the previous one.
//
// A patch of key k at version V is published by compare-and-set over V's predecessor and
// records the base version B of its chain (the last version put in full): the object at V is
// versions B..V of k, read in order, each an Arrow IPC stream of the same schema. A full put
// starts a new chain. Keeping and trimming versions never splits the chain of a key's latest
// version (EntryStore::Trim, the index rebuild); an older patched version whose base was
// trimmed can no longer be read in full, only its deltas from a version of its own chain.
//
// Thread-safety: pure functions over the index and the entry store, safe to call concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "cache/entry_store.h"

namespace quiver {

/// How a patch will be published.
struct PatchPlan {
  uint64_t over_version = 0;  ///< the version it appends to (its compare-and-set)
  uint64_t base_version = 0;  ///< the first version of the chain
  std::string over_blob;      ///< the data blob of over_version (the compare-and-set's too)
  /// The links of the object: a patch keeps them (invalidating what the object was computed
  /// from, or its tags, must reach every version of the chain).
  std::vector<std::string> depends_on;
  std::vector<std::string> tags;
};

/// \brief Plan a patch of `key` with rows of `schema`: NOT_FOUND (KeyError) without an object
/// to patch, a version conflict if `if_version` is not the latest, Invalid if the schema is
/// not the object's (the error names the difference).
arrow::Result<PatchPlan> PlanPatch(EntryStore* entries, const std::string& key,
                                   const arrow::Schema& schema,
                                   std::optional<uint64_t> if_version);

/// \brief "" if `patch` has the fields of `base` (names, types, nullability; metadata is not
/// compared), else what differs, e.g. "field 1 is 'n: int32' in the patch, 'n: int64' in the
/// object".
std::string SchemaDifference(const arrow::Schema& base, const arrow::Schema& patch);

}  // namespace quiver
