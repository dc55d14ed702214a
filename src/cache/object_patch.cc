#include "cache/object_patch.h"

#include <algorithm>

#include <arrow/type.h>

#include "format/stored_stream.h"

namespace quiver {

std::string SchemaDifference(const arrow::Schema& base, const arrow::Schema& patch) {
  const int n = std::max(base.num_fields(), patch.num_fields());
  for (int i = 0; i < n; ++i) {
    if (i >= patch.num_fields()) {
      return "the patch lacks field " + std::to_string(i) + " '" + base.field(i)->ToString() +
             "' of the object";
    }
    if (i >= base.num_fields()) {
      return "the patch has an extra field " + std::to_string(i) + " '" +
             patch.field(i)->ToString() + "'";
    }
    if (!base.field(i)->Equals(*patch.field(i), /*check_metadata=*/false)) {
      return "field " + std::to_string(i) + " is '" + patch.field(i)->ToString() +
             "' in the patch, '" + base.field(i)->ToString() + "' in the object";
    }
  }
  return "";
}

arrow::Result<PatchPlan> PlanPatch(EntryStore* entries, const std::string& key,
                                   const arrow::Schema& schema,
                                   std::optional<uint64_t> if_version) {
  ARROW_ASSIGN_OR_RAISE(auto latest, entries->Open(key, std::nullopt, /*promote=*/false));
  if (!latest) return arrow::Status::KeyError("no object '", key, "' to patch");
  const EntryMeta& meta = latest->meta;
  if (if_version && *if_version != meta.version) {
    return arrow::Status::AlreadyExists("version conflict: '", key, "' is at version ",
                                        meta.version, ", not ", *if_version);
  }
  ARROW_ASSIGN_OR_RAISE(auto stored, StoredStream::Open(latest->file));
  auto difference = SchemaDifference(*stored->schema(), schema);
  if (!difference.empty()) {
    return arrow::Status::Invalid("a patch must have the schema of the object it extends: ",
                                  difference);
  }
  return PatchPlan{meta.version, meta.first_needed(), meta.blob, meta.depends_on, meta.tags};
}

}  // namespace quiver
