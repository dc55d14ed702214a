// MemoryBlobStore: blobs held in RAM. The I/O seam's in-memory fake for engine tests
// (as leveldb's memenv), and the base of a future memory tier.
//
// Thread-safety: safe for concurrent use; see BlobStore.
#pragma once

#include <map>
#include <mutex>

#include <arrow/buffer.h>

#include "storage/blob_store.h"

namespace quiver {

class MemoryBlobStore final : public BlobStore {
 public:
  arrow::Result<std::unique_ptr<BlobWriter>> OpenWriter(const std::string& name) override;
  using BlobStore::OpenReader;
  arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenReader(
      const std::string& name, const BlobHint& hint) override;
  arrow::Status Delete(const std::string& name) override;
  arrow::Status Move(const std::string& from, const std::string& to) override;
  arrow::Result<std::vector<BlobInfo>> List(const std::string& prefix) override;
  // An aborted or abandoned writer leaves nothing here.
  arrow::Result<int64_t> RemoveTemporaries(bool, int64_t) override { return 0; }
  arrow::Result<int64_t> RemoveAllTemporaries() override { return 0; }
  std::string Describe() const override { return "memory"; }

  /// Called by writers on commit.
  void Install(const std::string& name, std::shared_ptr<arrow::Buffer> data);

 private:
  struct Stored {
    std::shared_ptr<arrow::Buffer> data;
    int64_t modified_ms = 0;
  };
  std::mutex mutex_;
  std::map<std::string, Stored> blobs_;
};

}  // namespace quiver
