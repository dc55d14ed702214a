// EntryStore: where entries live -- their data blobs and manifests in the BlobStore, their
// publication in the Index, and copies of small hot ones in the node's MemoryTier.
//
// Writing: NewWriter() streams a data blob under a name no other write uses. Publishing:
// Publish() writes the entry's manifest (its durable publication record, under a unique name
// too), then asks the index to publish it -- the one moment it becomes visible; a refusal
// deletes the manifest, and the caller decides about the data blob (retry, or Discard()).
// Reading: Open() looks the version up in the index, then opens its copy in memory or its
// blob. When the index cannot be reached and the node fails open, Open() reads the newest
// manifest in the store instead: what is in storage was published (or is being removed), and
// nothing can be published or removed while the index is away. With a DiskTier in front
// of a shared store, a blob is read from its local copy when there is one, and copied
// while it is read from the store when there is not. Removing: Remove()/Trim() take versions out of the index first, then delete their
// manifests (oldest first, durably), memory copies and blobs, and tell the other nodes.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cache/disk_tier.h"
#include "cache/entry_writer.h"
#include "cache/memory_tier.h"
#include "common/clock.h"
#include "index/index.h"
#include "storage/blob_store.h"
#include "storage/syncer.h"

namespace quiver {

/// What the entry tells the store about its data blob.
inline BlobHint BlobHintOf(const EntryMeta& meta) { return BlobHint{meta.bytes, meta.key_id}; }

/// A published version opened for reading.
struct OpenEntry {
  EntryMeta meta;
  std::shared_ptr<arrow::io::RandomAccessFile> file;
};

class EntryStore {
 public:
  /// \brief `fail_open`: serve reads from the manifests while the index is unavailable.
  /// `disk` (may be null): the node-local copies in front of a shared `store`.
  EntryStore(std::shared_ptr<BlobStore> store, std::shared_ptr<Index> index,
             std::shared_ptr<Clock> clock, std::string node, MemoryTier* memory,
             bool fail_open = false, std::shared_ptr<DiskTier> disk = nullptr);

  /// \brief Start writing an entry of `key`, limited to `max_bytes`.
  arrow::Result<std::unique_ptr<EntryWriter>> NewWriter(const std::string& key,
                                                        int64_t max_bytes,
                                                        std::string limit_name);
  /// \brief Publish a finished entry as its key's next version, as `request` says (its
  /// entry and expected_* fields are filled in here from `latest`, the key's latest version
  /// as the caller just read it: a stale one costs a retry, as does a version published by
  /// someone else meanwhile -- unless `if_version`, the client's compare-and-set, is set).
  /// Sets entry->version, ->manifest and (if 0) ->created_ms. On success the versions it
  /// trimmed are gone. A refusal deletes the manifest. An error with `*unclear` set leaves
  /// both files: the index may have published the entry before its answer was lost (then
  /// they are the entry's; if not, the garbage sweep removes them) -- so the caller must not
  /// Discard() then. Any other error published nothing.
  /// `if_version` and `if_blob`: the latest version must still be this number and, when
  /// given, this data blob (a patch appends to exactly the version it was planned over, not
  /// to the key deleted and written again up to the same number).
  arrow::Result<PublishOutcome> Publish(EntryMeta* entry, PublishRequest request,
                                        std::optional<uint64_t> if_version,
                                        const std::optional<std::string>& if_blob,
                                        std::optional<EntryMeta> latest, bool* unclear);
  /// \brief True if the index lists exactly this entry (its version, blob and manifest).
  arrow::Result<bool> IsPublished(const EntryMeta& entry);
  /// \brief Delete the data blob of an entry that will not be published.
  void Discard(const EntryMeta& entry);

  /// \brief Open `version` of `key` (latest if empty). A copy is promoted to memory when
  /// `promote` (a client's read). A missing key or version is std::nullopt.
  arrow::Result<std::optional<OpenEntry>> Open(const std::string& key,
                                               std::optional<uint64_t> version, bool promote);
  /// \brief Open the version `meta` describes, as the index listed it (no lookup); a
  /// version removed meanwhile is std::nullopt.
  arrow::Result<std::optional<OpenEntry>> OpenListed(EntryMeta meta);
  /// \brief Remove a key (see RemoveRequest); returns the versions removed, oldest first.
  arrow::Result<std::vector<EntryMeta>> Remove(const RemoveRequest& request);
  /// \brief Drop all but the newest `keep` versions of `key`.
  arrow::Result<std::vector<EntryMeta>> Trim(const std::string& key, int64_t keep);

  /// \brief Acknowledge publishes and removals only once `syncer` flushed them (the
  /// `durability: fsync` setting). Set before use.
  void SetSyncer(Syncer* syncer) { syncer_ = syncer; }
  /// \brief Check that a published entry's files are whole: its data blob has its size and
  /// checksum; a missing manifest is written again (true if it was). An error says what is
  /// wrong with the data.
  arrow::Result<bool> CheckStored(const EntryMeta& meta);
  /// \brief A stored blob is damaged (failed authentication or its checksum): move it to
  /// quarantine and remove its version (only the latest version is removed; an older one
  /// is left to the next rebuild).
  void TakeOutOfService(const EntryMeta& meta, const arrow::Status& why);

  /// Entries found damaged when read (failed authentication) and taken out of service.
  int64_t damaged() const { return damaged_; }
  /// Reads served from manifests because the index was unavailable.
  int64_t reads_without_index() const { return reads_without_index_; }
  bool fail_open() const { return fail_open_; }
  Index* index() const { return index_.get(); }
  MemoryTier* memory() const { return memory_; }
  DiskTier* disk() const { return disk_.get(); }
  const std::string& node() const { return node_; }

 private:
  /// Delete what the index no longer lists: manifests first (oldest first), then memory
  /// copies and data blobs; tell the other nodes. The first manifest error is returned.
  arrow::Status DropFiles(const std::vector<EntryMeta>& removed);
  /// `version` of `key` (latest if empty) as the manifests in the store say.
  arrow::Result<std::optional<EntryMeta>> FromManifests(const std::string& key,
                                                        std::optional<uint64_t> version);
  arrow::Result<std::optional<OpenEntry>> OpenMeta(std::optional<EntryMeta> meta, bool promote);

  std::shared_ptr<BlobStore> store_;
  std::shared_ptr<Index> index_;
  std::shared_ptr<Clock> clock_;
  std::string node_;
  MemoryTier* memory_;
  bool fail_open_;
  /// Under durability fsync: wait for the flush covering what was just written.
  arrow::Status Persist(const std::string& what);

  std::atomic<int64_t> reads_without_index_{0};
  std::atomic<int64_t> damaged_{0};
  std::shared_ptr<DiskTier> disk_;
  Syncer* syncer_ = nullptr;
};

}  // namespace quiver
