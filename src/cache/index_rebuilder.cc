#include "cache/index_rebuilder.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cache/entry_store.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/key.h"
#include "format/checksum.h"

namespace quiver {

std::string RebuildSummary::ToString() const {
  if (source == "journal") {
    return fmt::format(
        "loaded {} keys, {} versions, {} from the index journal ({} snapshot rows, {} log "
        "records; no manifest read) in {} ms; checked {} entries published after the last "
        "flush: {} taken out of service, {} manifests written again; removed {} temp files",
        keys, versions, FormatByteSize(bytes), snapshot_rows, log_records, elapsed_ms,
        unsynced_checked, unsynced_dropped, manifests_rewritten, temp_files_removed);
  }
  return fmt::format(
      "recovered {} keys, {} versions, {} in {} ms; removed {} temp files and {} expired "
      "results; quarantined {} damaged entries; {} superseded manifests and {} unreferenced "
      "blobs left for the garbage sweep",
      keys, versions, FormatByteSize(bytes), elapsed_ms, temp_files_removed, expired_removed,
      quarantined, superseded, unreferenced);
}

namespace {

// Check one manifest's entry and its blob (`data`: the data blobs listed, with their
// sizes -- a listing, because S3 with SSE-C cannot tell one object's size); an error
// explains why it cannot be served.
arrow::Status CheckEntry(BlobStore* store, const EntryMeta& meta,
                         const std::map<std::string, int64_t>& data, bool verify_checksums) {
  if (!IsQueryKey(meta.key)) ARROW_RETURN_NOT_OK(ObjectKey::Parse(meta.key).status());
  ARROW_RETURN_NOT_OK(ValidateBlobName(meta.blob));
  std::optional<int64_t> size;
  if (auto listed = data.find(meta.blob); listed != data.end()) size = listed->second;
  if (!size) {  // written after the data was listed? List its directory again.
    ARROW_ASSIGN_OR_RAISE(auto again,
                          store->List(meta.blob.substr(0, meta.blob.rfind('/') + 1)));
    for (const auto& info : again) {
      if (info.name == meta.blob) size = info.size;
    }
  }
  if (!size) return arrow::Status::IOError("data blob ", meta.blob, " is missing");
  if (*size != meta.bytes) {
    return arrow::Status::IOError("data blob ", meta.blob, " has ", *size,
                                  " bytes, the manifest says ", meta.bytes);
  }
  if (verify_checksums) {
    ARROW_ASSIGN_OR_RAISE(auto file, store->OpenReader(meta.blob, BlobHintOf(meta)));
    ARROW_ASSIGN_OR_RAISE(auto sum, ChecksumFile(file.get()));
    if (sum != meta.checksum) {
      return arrow::Status::IOError("data blob ", meta.blob, " fails its checksum (", sum,
                                    " != ", meta.checksum, ")");
    }
  }
  return arrow::Status::OK();
}

void Quarantine(BlobStore* store, const std::string& name) {
  auto st = store->Move(name, kQuarantineRoot + name);
  if (!st.ok() && !st.IsKeyError()) {
    spdlog::error("could not quarantine {}: {}", name, st.ToString());
  }
}

void DeleteQuietly(BlobStore* store, const std::string& name) {
  auto st = store->Delete(name);
  if (!st.ok()) spdlog::warn("removing {}: {}", name, st.ToString());
}

// The manifests found, by key and version; several may claim one version.
using Found = std::map<std::string, std::map<uint64_t, std::vector<EntryMeta>>>;

struct Scan {
  Found found;
  std::set<std::string> referenced;  // data blobs named by readable manifests
  std::set<std::string> quarantined;  // data blobs moved aside with their manifests
  int64_t unreadable = 0;            // manifests too damaged to name their data
};

arrow::Result<Scan> ScanManifests(BlobStore* store, const std::map<std::string, int64_t>& data,
                                  const RebuildOptions& options, RebuildSummary* summary) {
  Scan scan;
  ARROW_ASSIGN_OR_RAISE(auto manifests, store->List(kManifestRoot));
  summary->manifests_read = static_cast<int64_t>(manifests.size());
  for (const auto& info : manifests) {
    auto text = store->ReadAll(info.name, {info.size, ""});
    if (!text.ok() && text.status().IsKeyError()) continue;  // removed meanwhile
    auto entry = text.ok() ? ParseManifest(info.name, *text)
                           : arrow::Result<EntryMeta>(text.status());
    auto checked = entry.ok() ? CheckEntry(store, *entry, data, options.verify_checksums)
                              : entry.status();
    if (checked.ok()) {
      scan.referenced.insert(entry->blob);
      scan.found[entry->key][entry->version].push_back(std::move(*entry));
      continue;
    }
    spdlog::warn("quarantining {}: {}", info.name, checked.message());
    // Move the data too, if the manifest was readable enough to name it.
    auto meta = text.ok() ? EntryFromJson(*text) : arrow::Result<EntryMeta>(text.status());
    if (meta.ok() && ValidateBlobName(meta->blob).ok()) {
      Quarantine(store, meta->blob);
      scan.quarantined.insert(meta->blob);
    } else {
      ++scan.unreadable;
    }
    Quarantine(store, info.name);
    ++summary->quarantined;
  }
  return scan;
}

// The entries of one key to restore (oldest first); deletes what is not kept.
std::vector<EntryMeta> Choose(BlobStore* store, std::map<uint64_t, std::vector<EntryMeta>>* by_version,
                              const RebuildOptions& options, RebuildSummary* summary) {
  std::vector<EntryMeta> chosen;
  for (auto& [version, claims] : *by_version) {
    std::sort(claims.begin(), claims.end(), ClaimedBefore);
    summary->superseded += static_cast<int64_t>(claims.size()) - 1;
    chosen.push_back(claims.front());
  }
  const bool query = chosen.back().is_query();
  size_t keep = query ? 1 : static_cast<size_t>(std::max<int64_t>(options.keep_versions, 1));
  // A patched latest version needs its base and every patch since: they stay.
  const uint64_t needed_from = chosen.back().first_needed();
  const auto needed = static_cast<size_t>(std::count_if(
      chosen.begin(), chosen.end(), [&](const EntryMeta& e) { return e.version >= needed_from; }));
  keep = std::max(keep, needed);
  const size_t drop = chosen.size() > keep ? chosen.size() - keep : 0;
  std::vector<EntryMeta> out;
  for (size_t i = 0; i < chosen.size(); ++i) {
    const bool expired = chosen[i].expired(options.now_ms);
    if (i >= drop && !expired) {
      out.push_back(std::move(chosen[i]));
      continue;
    }
    // Known to be gone: trimmed (a crash between publishing and trimming) or expired.
    if (expired) ++summary->expired_removed;
    DeleteQuietly(store, chosen[i].manifest);
    DeleteQuietly(store, chosen[i].blob);
  }
  return out;
}

arrow::Status CountUnreferenced(BlobStore* store, const std::vector<BlobInfo>& blobs,
                                const Scan& scan, const RebuildOptions& options,
                                RebuildSummary* summary) {
  // Blob times are the store's real ones.
  const int64_t settled_before = Clock::System()->NowMillis() - options.grace_ms;
  for (const auto& info : blobs) {
    if (scan.referenced.count(info.name) || scan.quarantined.count(info.name)) continue;
    // With an unreadable manifest, unnamed data may be that entry's: keep it aside rather
    // than let the sweep remove it -- unless it may be another node's write in progress.
    if (scan.unreadable > 0 && (options.exclusive || info.modified_ms < settled_before)) {
      Quarantine(store, info.name);
      continue;
    }
    ++summary->unreferenced;
  }
  return arrow::Status::OK();
}

}  // namespace

arrow::Result<RebuildSummary> RebuildIndex(BlobStore* store, Index* index,
                                           const RebuildOptions& options) {
  auto start = std::chrono::steady_clock::now();
  RebuildSummary summary;
  // Shared stores: other nodes' writes run on, and this node's own leftovers were removed
  // when it started (its writes in progress now must stay).
  if (options.exclusive) {
    ARROW_ASSIGN_OR_RAISE(summary.temp_files_removed, store->RemoveAllTemporaries());
  }
  // Data first: a blob written after this listing belongs to a manifest written after it too.
  ARROW_ASSIGN_OR_RAISE(auto blobs, store->List(kDataRoot));
  std::map<std::string, int64_t> data;
  for (const auto& info : blobs) data.emplace(info.name, info.size);
  ARROW_ASSIGN_OR_RAISE(auto scan, ScanManifests(store, data, options, &summary));
  std::vector<EntryMeta> restore;
  for (auto& [key, by_version] : scan.found) {
    auto kept = Choose(store, &by_version, options, &summary);
    if (!kept.empty()) ++summary.keys;
    for (auto& meta : kept) restore.push_back(std::move(meta));
  }
  // Oldest first, so that recency starts out as creation order.
  std::stable_sort(restore.begin(), restore.end(), [](const EntryMeta& a, const EntryMeta& b) {
    return a.created_ms < b.created_ms;
  });
  for (const auto& meta : restore) {
    auto restored = index->Restore(meta, options.scoring);
    if (restored.IsAlreadyExists()) {  // another rebuilder restored another claim of it
      spdlog::warn("not restoring {}: {}", meta.manifest, restored.message());
      continue;
    }
    ARROW_RETURN_NOT_OK(restored);
    ++summary.versions;
    summary.bytes += meta.bytes;
  }
  ARROW_RETURN_NOT_OK(CountUnreferenced(store, blobs, scan, options, &summary));
  summary.elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count();
  return summary;
}

}  // namespace quiver
