// The BlobStore conformance suite on the local and in-memory stores.
#include <filesystem>

#include "storage/blob_store_test_util.h"
#include "storage/local_blob_store.h"
#include "storage/memory_blob_store.h"

namespace quiver {
namespace {

// Two handles on one directory act as two processes sharing it (the in-process directory
// lock is per handle, like a process's).
class LocalBlobStoreConformance : public BlobStoreConformanceTest {
 protected:
  LocalBlobStoreConformance() {
    char tmpl[] = "/tmp/quiver-blob-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  ~LocalBlobStoreConformance() override { std::filesystem::remove_all(dir_); }
  std::shared_ptr<BlobStore> OpenStore() override {
    return *LocalBlobStore::Open(dir_, "w" + std::to_string(handles_++));
  }

 private:
  std::string dir_;
  int handles_ = 0;
};
QUIVER_BLOB_STORE_CONFORMANCE_TESTS(LocalBlobStoreConformance)

class MemoryBlobStoreConformance : public BlobStoreConformanceTest {
 protected:
  std::shared_ptr<BlobStore> OpenStore() override {
    if (!shared_) shared_ = std::make_shared<MemoryBlobStore>();
    return shared_;
  }

 private:
  std::shared_ptr<MemoryBlobStore> shared_;
};
QUIVER_BLOB_STORE_CONFORMANCE_TESTS(MemoryBlobStoreConformance)

}  // namespace
}  // namespace quiver
