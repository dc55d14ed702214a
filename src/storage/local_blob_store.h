// LocalBlobStore: blobs as files below a root directory.
//
// Layout: <root>/<name> for committed blobs, <root>/.tmp/<writer>~<n>-<random>.part for blobs
// being written (a writer tag never holds '~'). Commit = flush, fsync(file), rename into
// place, fsync(parent directory); so after a crash a name holds either the old blob or the
// new one, never a torn one. With a Syncer (SetSyncer, the `durability` setting) the fsyncs
// are left to it: a name then holds the old blob or the new one after a crash of the
// process, and after a power loss anything written since the last flush may be short or
// missing (the index journal's recovery checks those entries). Readers memory-map.
//
// Several processes may share the directory (nodes of one cache on a shared filesystem).
// Lock() takes an advisory lock on <root>/.lock: exclusive for a process that owns the
// directory alone, shared for nodes of a cluster, so the two kinds never mix.
//
// Thread-safety: safe for concurrent use; see BlobStore. Deleting a blob removes the
// directories it emptied. In one process that pruning excludes (by a store-wide lock) every
// rename into place together with the mkdir before it; a commit that still finds its directory
// gone (pruned by another process) makes it again and retries.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>

#include "storage/blob_store.h"
#include "storage/syncer.h"

namespace quiver {

class LocalBlobStore final : public BlobStore {
 public:
  /// \brief Open (creating if needed) a store rooted at `root`. `writer` tags the temporary
  /// files of this process (RemoveTemporaries), e.g. the node id.
  static arrow::Result<std::shared_ptr<LocalBlobStore>> Open(const std::string& root,
                                                             const std::string& writer = "");
  ~LocalBlobStore() override;

  /// \brief Take the directory's advisory lock: `exclusive` for a process that must be its
  /// only user, shared otherwise. The error says who holds it when it is taken.
  arrow::Status Lock(bool exclusive);
  /// \brief Leave flushing to `syncer` (the `durability` setting): commits, moves and
  /// deletes then reach the page cache only; whoever acknowledges a write waits for the
  /// syncer as its mode says. Set it before the store is used; without one, every change
  /// is durable when the call returns.
  void SetSyncer(std::shared_ptr<Syncer> syncer) { syncer_ = std::move(syncer); }

  arrow::Result<std::unique_ptr<BlobWriter>> OpenWriter(const std::string& name) override;
  using BlobStore::OpenReader;
  arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenReader(
      const std::string& name, const BlobHint& hint) override;
  arrow::Status Delete(const std::string& name) override;
  arrow::Status Move(const std::string& from, const std::string& to) override;
  arrow::Result<std::vector<BlobInfo>> List(const std::string& prefix) override;
  arrow::Result<int64_t> RemoveTemporaries(bool own, int64_t modified_before_ms) override;
  arrow::Result<int64_t> RemoveAllTemporaries() override;
  std::string Describe() const override { return "local:" + root_; }

  const std::string& root() const { return root_; }
  /// Directory holding in-progress writes.
  std::string temp_dir() const { return root_ + "/.tmp"; }

 private:
  LocalBlobStore(std::string root, std::string writer)
      : root_(std::move(root)), writer_(std::move(writer)) {}
  std::string PathOf(const std::string& name) const { return root_ + "/" + name; }
  /// Remove the temporaries `match` picks, given their file name and stat.
  arrow::Result<int64_t> RemoveTemporariesIf(
      const std::function<bool(const std::string&, const struct stat&)>& match);

  std::string root_;
  std::string writer_;
  int lock_fd_ = -1;
  std::atomic<uint64_t> next_temp_{0};
  // Shared: create a directory and rename a blob into it. Exclusive: prune empty
  // directories. Writers hold it by shared_ptr, so one that outlives the store is safe.
  std::shared_ptr<std::shared_mutex> dirs_ = std::make_shared<std::shared_mutex>();
  std::shared_ptr<Syncer> syncer_;
};

}  // namespace quiver
