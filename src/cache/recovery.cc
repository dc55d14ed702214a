#include "cache/recovery.h"

#include <chrono>
#include <map>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/config.h"
#include "common/key.h"
#include "format/checksum.h"

namespace quiver {

std::string RecoverySummary::ToString() const {
  return fmt::format(
      "recovered {} keys, {} versions, {} in {} ms; removed {} temp files, {} orphan blobs "
      "and {} expired results; quarantined {} damaged entries",
      keys, versions, FormatByteSize(bytes), elapsed_ms, temp_files_removed, orphans_removed,
      expired_removed, quarantined);
}

namespace {

// Check one manifest and its blob; an error explains why the entry cannot be served.
arrow::Result<EntryMeta> CheckEntry(BlobStore* store, const std::string& manifest_name,
                                    bool verify_checksums) {
  ARROW_ASSIGN_OR_RAISE(auto json, store->ReadAll(manifest_name));
  ARROW_ASSIGN_OR_RAISE(auto meta, ManifestFromJson(json));
  if (!IsQueryKey(meta.key)) ARROW_RETURN_NOT_OK(ObjectKey::Parse(meta.key).status());
  if (ManifestBlobName(meta.key, meta.version) != manifest_name) {
    return arrow::Status::Invalid("manifest names key '", meta.key, "' version ", meta.version,
                                  " but is stored as ", manifest_name);
  }
  ARROW_RETURN_NOT_OK(ValidateBlobName(meta.blob));
  ARROW_ASSIGN_OR_RAISE(auto file, store->OpenReader(meta.blob));
  ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
  if (size != meta.bytes) {
    return arrow::Status::IOError("data blob ", meta.blob, " has ", size,
                                  " bytes, the manifest says ", meta.bytes);
  }
  if (verify_checksums) {
    ARROW_ASSIGN_OR_RAISE(auto sum, ChecksumFile(file.get()));
    if (sum != meta.checksum) {
      return arrow::Status::IOError("data blob ", meta.blob, " fails its checksum (", sum,
                                    " != ", meta.checksum, ")");
    }
  }
  return meta;
}

void Quarantine(BlobStore* store, const std::string& name) {
  auto st = store->Move(name, kQuarantineRoot + name);
  if (!st.ok() && !st.IsKeyError()) {
    spdlog::error("could not quarantine {}: {}", name, st.ToString());
  }
}

}  // namespace

arrow::Result<RecoverySummary> RecoverIndex(BlobStore* store, Index* index,
                                            const RecoveryOptions& options,
                                            std::vector<EntryMeta>* restored) {
  auto start = std::chrono::steady_clock::now();
  RecoverySummary summary;
  ARROW_ASSIGN_OR_RAISE(summary.temp_files_removed, store->RemoveTemporaries());

  ARROW_ASSIGN_OR_RAISE(auto manifests, store->List(kManifestRoot));
  std::set<std::string> referenced;
  int64_t unreadable_manifests = 0;
  std::map<std::string, std::vector<EntryMeta>> by_key;
  for (const auto& info : manifests) {
    auto entry = CheckEntry(store, info.name, options.verify_checksums);
    if (!entry.ok()) {
      spdlog::warn("quarantining {}: {}", info.name, entry.status().message());
      // Move the data too, if the manifest was readable enough to name it.
      auto json = store->ReadAll(info.name);
      auto meta = json.ok() ? ManifestFromJson(*json) : arrow::Result<EntryMeta>(json.status());
      if (meta.ok() && ValidateBlobName(meta->blob).ok()) {
        Quarantine(store, meta->blob);
      } else {
        ++unreadable_manifests;
      }
      Quarantine(store, info.name);
      ++summary.quarantined;
      continue;
    }
    referenced.insert(entry->blob);
    by_key[entry->key].push_back(std::move(*entry));
  }

  for (auto& [key, versions] : by_key) {
    // List() is sorted and version names are zero-padded, so versions ascend.
    size_t drop = versions.size() > static_cast<size_t>(options.keep_versions)
                      ? versions.size() - static_cast<size_t>(options.keep_versions)
                      : 0;
    if (versions.front().is_query()) drop = versions.size() - 1;
    for (size_t i = 0; i < versions.size(); ++i) {
      const auto& meta = versions[i];
      bool expired = meta.expired(options.now_ms);
      if (i < drop || expired) {
        if (expired) ++summary.expired_removed;
        // A crash after publishing a new version but before trimming the old one.
        ARROW_RETURN_NOT_OK(store->Delete(ManifestBlobName(meta.key, meta.version)));
        referenced.erase(meta.blob);
        continue;
      }
      ARROW_RETURN_NOT_OK(index->Restore(meta));
      if (restored) restored->push_back(meta);
      ++summary.versions;
      summary.bytes += meta.bytes;
    }
    if (!versions.empty() && !versions.back().expired(options.now_ms)) ++summary.keys;
  }

  // Unreferenced data is debris of a crash between committing data and its manifest --
  // unless a manifest was unreadable: then it may be that entry's data, so keep it aside.
  ARROW_ASSIGN_OR_RAISE(auto blobs, store->List(kDataRoot));
  for (const auto& info : blobs) {
    if (referenced.count(info.name)) continue;
    if (unreadable_manifests > 0) {
      Quarantine(store, info.name);
    } else {
      ARROW_RETURN_NOT_OK(store->Delete(info.name));
    }
    ++summary.orphans_removed;
  }
  summary.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count();
  return summary;
}

}  // namespace quiver
