#include "storage/memory_blob_store.h"

#include <chrono>

#include <arrow/io/memory.h>

namespace quiver {

namespace {

class MemoryBlobWriter final : public BlobWriter {
 public:
  MemoryBlobWriter(std::string name, MemoryBlobStore* store,
                   std::shared_ptr<arrow::io::BufferOutputStream> sink)
      : BlobWriter(std::move(name)), store_(store), sink_(std::move(sink)) {}

  arrow::Status Write(const void* data, int64_t nbytes) override {
    if (done_) return arrow::Status::Invalid("blob '", name_, "' is already committed or aborted");
    return sink_->Write(data, nbytes);
  }
  arrow::Status Flush() override { return arrow::Status::OK(); }
  bool closed() const override { return done_; }
  arrow::Result<int64_t> Tell() const override { return sink_->Tell(); }

  arrow::Status Commit() override {
    if (done_) return arrow::Status::Invalid("blob '", name_, "' is already committed or aborted");
    done_ = true;
    ARROW_ASSIGN_OR_RAISE(auto buffer, sink_->Finish());
    store_->Install(name_, std::move(buffer));
    return arrow::Status::OK();
  }
  arrow::Status Abort() override {
    done_ = true;
    return arrow::Status::OK();
  }

 private:
  MemoryBlobStore* store_;
  std::shared_ptr<arrow::io::BufferOutputStream> sink_;
  bool done_ = false;
};

}  // namespace

arrow::Result<std::unique_ptr<BlobWriter>> MemoryBlobStore::OpenWriter(const std::string& name) {
  ARROW_RETURN_NOT_OK(ValidateBlobName(name));
  ARROW_ASSIGN_OR_RAISE(auto sink, arrow::io::BufferOutputStream::Create());
  return std::make_unique<MemoryBlobWriter>(name, this, std::move(sink));
}

void MemoryBlobStore::Install(const std::string& name, std::shared_ptr<arrow::Buffer> data) {
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::lock_guard<std::mutex> lock(mutex_);
  blobs_[name] = Stored{std::move(data), now};
}

arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> MemoryBlobStore::OpenReader(
    const std::string& name, const BlobHint& /*hint*/) {
  ARROW_RETURN_NOT_OK(ValidateBlobName(name));
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = blobs_.find(name);
  if (it == blobs_.end()) return arrow::Status::KeyError("blob '", name, "' not found");
  return std::make_shared<arrow::io::BufferReader>(it->second.data);
}

arrow::Status MemoryBlobStore::Delete(const std::string& name) {
  ARROW_RETURN_NOT_OK(ValidateBlobName(name));
  std::lock_guard<std::mutex> lock(mutex_);
  blobs_.erase(name);
  return arrow::Status::OK();
}

arrow::Status MemoryBlobStore::Move(const std::string& from, const std::string& to) {
  ARROW_RETURN_NOT_OK(ValidateBlobName(from));
  ARROW_RETURN_NOT_OK(ValidateBlobName(to));
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = blobs_.find(from);
  if (it == blobs_.end()) return arrow::Status::KeyError("blob '", from, "' not found");
  blobs_[to] = it->second;
  blobs_.erase(it);
  return arrow::Status::OK();
}

arrow::Result<std::vector<BlobInfo>> MemoryBlobStore::List(const std::string& prefix) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<BlobInfo> out;
  for (auto it = blobs_.lower_bound(prefix);
       it != blobs_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    out.push_back(BlobInfo{it->first, it->second.data->size(), it->second.modified_ms});
  }
  return out;
}

}  // namespace quiver
