#include "cache/entry_store.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "cache/damage_watch.h"
#include "format/checksum.h"
#include "storage/encrypted_blob_store.h"

namespace quiver {

namespace {

// Versions published by others between our read and our publish: retried, up to this many
// times in a row (each retry means someone else's publish succeeded).
constexpr int kMaxConflictRetries = 100;

// Keeps the index's own detail (an unavailable index is still UNAVAILABLE to the client);
// the message says what is known.
arrow::Status UnclearPublish(const arrow::Status& cause) {
  return arrow::Status(cause.code(),
                       cause.message() + " (whether it was published is unknown; if it was "
                                         "not, the garbage sweep removes its files)",
                       cause.detail());
}

}  // namespace

EntryStore::EntryStore(std::shared_ptr<BlobStore> store, std::shared_ptr<Index> index,
                       std::shared_ptr<Clock> clock, std::string node, MemoryTier* memory,
                       bool fail_open, std::shared_ptr<DiskTier> disk)
    : store_(std::move(store)),
      index_(std::move(index)),
      clock_(std::move(clock)),
      node_(std::move(node)),
      memory_(memory),
      fail_open_(fail_open),
      disk_(std::move(disk)) {}

arrow::Result<std::unique_ptr<EntryWriter>> EntryStore::NewWriter(const std::string& key,
                                                                  int64_t max_bytes,
                                                                  std::string limit_name) {
  ARROW_ASSIGN_OR_RAISE(auto blob, store_->OpenWriter(NewDataBlobName(node_)));
  if (disk_) blob = disk_->TeeWriter(std::move(blob));
  return std::make_unique<EntryWriter>(key, node_, std::move(blob), max_bytes,
                                       std::move(limit_name));
}

arrow::Result<bool> EntryStore::IsPublished(const EntryMeta& entry) {
  ARROW_ASSIGN_OR_RAISE(auto found, index_->Get(entry.key, entry.version));
  return found && found->blob == entry.blob && found->manifest == entry.manifest;
}

arrow::Result<PublishOutcome> EntryStore::Publish(EntryMeta* entry, PublishRequest request,
                                                  std::optional<uint64_t> if_version,
                                                  const std::optional<std::string>& if_blob,
                                                  std::optional<EntryMeta> latest,
                                                  bool* unclear) {
  *unclear = false;
  if (entry->created_ms == 0) entry->created_ms = clock_->NowMillis();
  // Published: the disk tier keeps the copy the fill wrote (if it made one); with
  // durability fsync it is acknowledged once on disk.
  auto admitted = [&](PublishOutcome outcome) -> arrow::Result<PublishOutcome> {
    if (disk_) disk_->Admit(*entry);
    ARROW_RETURN_NOT_OK(Persist(entry->key + "@" + std::to_string(entry->version)));
    return outcome;
  };
  for (int attempt = 0;; ++attempt) {
    if (attempt > 0) {
      ARROW_ASSIGN_OR_RAISE(latest, index_->Get(entry->key, std::nullopt));
    }
    request.expected_version = latest ? latest->version : 0;
    if ((if_version && *if_version != request.expected_version) ||
        (if_blob && (!latest || latest->blob != *if_blob))) {
      PublishOutcome conflict;
      conflict.refusal = Refusal::kVersionConflict;
      conflict.current_version = request.expected_version;
      return conflict;
    }
    request.expected_blob = latest ? latest->blob : "";
    request.expected_depends_on = latest ? latest->depends_on : std::vector<std::string>{};
    request.expected_tags = latest ? latest->tags : std::vector<std::string>{};
    entry->version = request.expected_version + 1;
    entry->manifest = NewManifestName(entry->key, entry->version, node_);
    // The manifest is the publication record in storage: once the index accepts the entry,
    // the version survives a restart and a rebuild.
    ARROW_RETURN_NOT_OK(store_->WriteAll(entry->manifest, EntryToJson(*entry)));
    request.entry = *entry;
    auto outcome = index_->Publish(request);
    if (!outcome.ok()) {
      // The index may have published it before the answer was lost: it is either published,
      // or garbage the sweep removes -- its files are left either way.
      auto published = IsPublished(*entry);
      if (published.ok() && *published) return admitted(PublishOutcome{});
      *unclear = true;
      if (disk_) disk_->Erase(entry->blob);  // only the local copy: a cache either way
      return UnclearPublish(outcome.status());
    }
    // A conflict at exactly this version can be this writer's own publish, replayed after
    // a broken connection.
    if (outcome->refusal == Refusal::kVersionConflict &&
        outcome->current_version == entry->version) {
      auto published = IsPublished(*entry);
      if (published.ok() && *published) return admitted(PublishOutcome{});
    }
    if (outcome->published()) {
      auto dropped = DropFiles(outcome->trimmed);  // published whatever happens to them
      if (!dropped.ok()) spdlog::warn("removing trimmed versions of {}: {}", entry->key,
                                      dropped.ToString());
      return admitted(std::move(*outcome));
    }
    auto removed = store_->Delete(entry->manifest);
    if (!removed.ok()) {  // left for the garbage sweep; a rebuild before it could restore it
      spdlog::error("removing the manifest of refused {}@{}: {}", entry->key, entry->version,
                    removed.ToString());
    }
    const bool retry = outcome->refusal == Refusal::kVersionConflict && !if_version &&
                       attempt < kMaxConflictRetries;
    if (!retry) return outcome;
  }
}

void EntryStore::Discard(const EntryMeta& entry) {
  if (disk_) disk_->Erase(entry.blob);
  auto st = store_->Delete(entry.blob);
  if (!st.ok()) spdlog::warn("removing unpublished {}: {}", entry.blob, st.ToString());
}

arrow::Result<std::optional<OpenEntry>> EntryStore::Open(const std::string& key,
                                                         std::optional<uint64_t> version,
                                                         bool promote) {
  // A version can be trimmed or removed between the lookup and the open; retry on the
  // newer state rather than fail the read.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto meta = index_->Get(key, version);
    if (!meta.ok() && fail_open_ && IsIndexUnavailable(meta.status())) {
      meta = FromManifests(key, version);
      if (meta.ok()) ++reads_without_index_;
    }
    ARROW_RETURN_NOT_OK(meta.status());
    // An expired result is absent: never served, nor copied into memory.
    if (*meta && (*meta)->expired(clock_->NowMillis())) return std::nullopt;
    auto opened = OpenMeta(std::move(*meta), promote);
    if (!opened.ok() && opened.status().IsKeyError()) continue;
    return opened;
  }
  return std::nullopt;
}

arrow::Result<std::optional<OpenEntry>> EntryStore::OpenListed(EntryMeta meta) {
  auto opened = OpenMeta(std::move(meta), /*promote=*/false);
  if (!opened.ok() && opened.status().IsKeyError()) return std::nullopt;
  return opened;
}

arrow::Result<std::optional<OpenEntry>> EntryStore::OpenMeta(std::optional<EntryMeta> meta,
                                                             bool promote) {
  if (!meta) return std::nullopt;
  if (auto in_memory = memory_->Lookup(meta->key, meta->blob)) {
    return OpenEntry{std::move(*meta), std::move(in_memory)};
  }
  std::shared_ptr<arrow::io::RandomAccessFile> file;
  if (disk_) {
    ARROW_ASSIGN_OR_RAISE(file, disk_->Lookup(*meta));
  }
  if (file) {  // a damaged copy is dropped; the next read fetches the blob again
    file = WatchForDamage(std::move(file), [disk = disk_, blob = meta->blob](
                                               const arrow::Status& why) {
      disk->Quarantine(blob, why);
    });
  } else {
    auto opened = store_->OpenReader(meta->blob, BlobHintOf(*meta));
    if (!opened.ok() && IsTampered(opened.status())) {
      TakeOutOfService(*meta, opened.status());
      return arrow::Status::IOError("entry ", meta->key, "@", meta->version,
                                    " is damaged and was taken out of service: ",
                                    opened.status().message());
    }
    ARROW_ASSIGN_OR_RAISE(file, std::move(opened));
    file = WatchForDamage(std::move(file), [this, damaged = *meta](const arrow::Status& why) {
      TakeOutOfService(damaged, why);
    });
    if (disk_) file = disk_->CopyOnRead(*meta, std::move(file));
  }
  if (promote) {
    auto copy = memory_->Promote(meta->key, meta->version, meta->blob, file.get(),
                                 static_cast<double>(meta->cost_ms) / 1000.0);
    if (!copy.ok()) spdlog::warn("promoting {} to memory: {}", meta->key, copy.status().ToString());
    if (copy.ok() && *copy) file = std::move(*copy);  // read once: serve the copy
  }
  return OpenEntry{std::move(*meta), std::move(file)};
}

void EntryStore::TakeOutOfService(const EntryMeta& meta, const arrow::Status& why) {
  ++damaged_;
  spdlog::error("{}@{}: its data blob {} is damaged ({}); moving it to quarantine and "
                "removing the version", meta.key, meta.version, meta.blob, why.message());
  auto moved = store_->Move(meta.blob, kQuarantineRoot + meta.blob);
  if (!moved.ok()) spdlog::warn("quarantining {}: {}", meta.blob, moved.ToString());
  RemoveRequest request(meta.key);
  request.only_if_blob = meta.blob;
  auto removed = Remove(request);
  if (!removed.ok()) {
    spdlog::warn("removing damaged {}@{}: {}", meta.key, meta.version, removed.status().ToString());
  }
}

arrow::Result<std::optional<EntryMeta>> EntryStore::FromManifests(
    const std::string& key, std::optional<uint64_t> version) {
  ARROW_ASSIGN_OR_RAISE(auto manifests, store_->List(ManifestKeyPrefix(key)));
  // Names sort by version: newest last. Of several for one version, the earliest created
  // won (a loser removes its manifest right after losing).
  std::optional<EntryMeta> best;
  for (auto it = manifests.rbegin(); it != manifests.rend(); ++it) {
    auto named = ParseManifestName(it->name);
    if (!named || named->key != key || (version && named->version != *version)) continue;
    if (best && named->version < best->version) break;
    auto text = store_->ReadAll(it->name, {it->size, ""});
    if (!text.ok()) continue;  // removed meanwhile
    auto meta = ParseManifest(it->name, *text);
    if (!meta.ok()) continue;
    // Of several claims to one version, the same one a rebuild would restore.
    if (!best || ClaimedBefore(*meta, *best)) best = std::move(*meta);
  }
  return best;
}

arrow::Result<std::vector<EntryMeta>> EntryStore::Remove(const RemoveRequest& request) {
  ARROW_ASSIGN_OR_RAISE(auto removed, index_->Remove(request));
  ARROW_RETURN_NOT_OK(DropFiles(removed));
  if (!removed.empty()) ARROW_RETURN_NOT_OK(Persist("the removal of " + request.key));
  return removed;
}

arrow::Status EntryStore::Persist(const std::string& what) {
  if (!syncer_) return arrow::Status::OK();
  auto st = syncer_->Sync();
  if (st.ok()) return st;
  return arrow::Status::IOError(what, " is done but could not be flushed to disk: ",
                                st.message());
}

arrow::Result<bool> EntryStore::CheckStored(const EntryMeta& meta) {
  ARROW_ASSIGN_OR_RAISE(auto file, store_->OpenReader(meta.blob, BlobHintOf(meta)));
  ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
  if (size != meta.bytes) {
    return arrow::Status::IOError("data blob ", meta.blob, " has ", size,
                                  " bytes, the entry says ", meta.bytes);
  }
  ARROW_ASSIGN_OR_RAISE(auto sum, ChecksumFile(file.get()));
  if (sum != meta.checksum) {
    return arrow::Status::IOError("data blob ", meta.blob, " fails its checksum (", sum,
                                  " != ", meta.checksum, ")");
  }
  auto manifest = store_->ReadAll(meta.manifest);
  if (manifest.ok()) return false;
  if (!manifest.status().IsKeyError()) return manifest.status();
  // The data is whole but the manifest was lost: without it a rebuild would lose the entry.
  ARROW_RETURN_NOT_OK(store_->WriteAll(meta.manifest, EntryToJson(meta)));
  return true;
}

arrow::Result<std::vector<EntryMeta>> EntryStore::Trim(const std::string& key, int64_t keep) {
  // The latest version may be a patch: its base and the patches since stay readable. One
  // more is kept for a patch published between this read and the trim (it can only extend
  // the chain by one: patches publish by compare-and-set on the latest version).
  ARROW_ASSIGN_OR_RAISE(auto latest, index_->Get(key, std::nullopt));
  if (latest && latest->is_patch()) {
    keep = std::max<int64_t>(keep, static_cast<int64_t>(latest->version -
                                                        latest->base_version) + 2);
  }
  ARROW_ASSIGN_OR_RAISE(auto trimmed, index_->Trim(key, keep));
  ARROW_RETURN_NOT_OK(DropFiles(trimmed));
  return trimmed;
}

arrow::Status EntryStore::DropFiles(const std::vector<EntryMeta>& removed) {
  if (removed.empty()) return arrow::Status::OK();
  // Manifests first, oldest first: a crash part-way leaves the newest versions (as if the
  // removal had not happened), never an older version as the latest.
  arrow::Status first_error;
  for (const auto& old : removed) {
    auto st = store_->Delete(old.manifest);
    if (!st.ok() && first_error.ok()) first_error = st;
  }
  IndexEvent event;
  event.kind = IndexEvent::Kind::kRemoved;
  event.node = node_;
  event.key = removed.front().key;
  for (const auto& old : removed) {
    memory_->Erase(old.key, old.blob);
    if (disk_) disk_->Erase(old.blob);
    auto st = store_->Delete(old.blob);
    if (!st.ok()) spdlog::warn("removing {} of {}@{}: {}", old.blob, old.key, old.version,
                               st.ToString());
    event.blobs.push_back(old.blob);
  }
  auto told = index_->Announce(event);
  if (!told.ok()) spdlog::debug("announcing the removal of {}: {}", event.key, told.ToString());
  return first_error;
}

}  // namespace quiver
