#include "cache/disk_tier.h"

#include <algorithm>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/io/concurrency.h>
#include <spdlog/spdlog.h>

#include "common/config.h"

namespace quiver {

// Passes reads of a shared-store blob through, writing what is read front to back into a
// local copy; commits the copy when the last byte has been read. A read that skips ahead
// abandons the copy (the stream is not being read whole).
class CopyingReader final
    : public arrow::io::internal::RandomAccessFileConcurrencyWrapper<CopyingReader> {
 public:
  CopyingReader(std::shared_ptr<DiskTier> tier, EntryMeta meta,
                std::shared_ptr<arrow::io::RandomAccessFile> remote,
                std::unique_ptr<BlobWriter> copy)
      : tier_(std::move(tier)),
        meta_(std::move(meta)),
        remote_(std::move(remote)),
        copy_(std::move(copy)) {}
  ~CopyingReader() override { Abandon(/*failed=*/false); }

  bool closed() const override { return remote_->closed(); }

 protected:
  friend RandomAccessFileConcurrencyWrapper<CopyingReader>;
  arrow::Status DoClose() {
    Abandon(false);
    return remote_->Close();
  }
  arrow::Result<int64_t> DoTell() const { return position_; }
  arrow::Result<int64_t> DoGetSize() { return meta_.bytes; }
  arrow::Status DoSeek(int64_t position) {
    ARROW_RETURN_NOT_OK(remote_->Seek(position));
    position_ = position;
    return arrow::Status::OK();
  }
  arrow::Result<std::shared_ptr<arrow::Buffer>> DoRead(int64_t nbytes) {
    ARROW_ASSIGN_OR_RAISE(auto buffer, remote_->Read(nbytes));
    Offer(position_, *buffer);
    position_ += buffer->size();
    return buffer;
  }
  arrow::Result<int64_t> DoRead(int64_t nbytes, void* out) {
    ARROW_ASSIGN_OR_RAISE(int64_t got, remote_->Read(nbytes, out));
    Offer(position_, arrow::Buffer(static_cast<const uint8_t*>(out), got));
    position_ += got;
    return got;
  }
  arrow::Result<std::shared_ptr<arrow::Buffer>> DoReadAt(int64_t position, int64_t nbytes,
                                                         bool allow_short_read) {
    ARROW_ASSIGN_OR_RAISE(auto buffer, remote_->ReadAt(position, nbytes, allow_short_read));
    Offer(position, *buffer);
    return buffer;
  }
  arrow::Result<int64_t> DoReadAt(int64_t position, int64_t nbytes, bool allow_short_read,
                                  void* out) {
    ARROW_ASSIGN_OR_RAISE(int64_t got, remote_->ReadAt(position, nbytes, allow_short_read, out));
    Offer(position, arrow::Buffer(static_cast<const uint8_t*>(out), got));
    return got;
  }

 private:
  // Bytes [position, position + data.size()) were read: extend the copy with what it lacks.
  void Offer(int64_t position, const arrow::Buffer& data) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!copy_) return;
    const int64_t end = position + data.size();
    if (end <= copied_) return;  // read again
    if (position > copied_) {    // skipped ahead: not a front-to-back read
      AbandonLocked(false);
      return;
    }
    const int64_t skip = copied_ - position;
    auto st = copy_->Write(data.data() + skip, data.size() - skip);
    if (!st.ok()) {
      spdlog::warn("disk tier: copying {}: {}", meta_.blob, st.ToString());
      AbandonLocked(true);
      return;
    }
    copied_ = end;
    if (copied_ < meta_.bytes) return;
    st = copy_->Commit();
    copy_.reset();
    if (!st.ok()) {
      spdlog::warn("disk tier: keeping a copy of {}: {}", meta_.blob, st.ToString());
      tier_->CopyEnded(meta_.blob, false);
      std::lock_guard<std::mutex> stats(tier_->mutex_);
      ++tier_->stats_.copy_failures;
      return;
    }
    tier_->CopyEnded(meta_.blob, true);
    tier_->Added(meta_.blob, meta_.bytes, static_cast<double>(meta_.cost_ms) / 1000.0);
  }
  void Abandon(bool failed) {
    std::lock_guard<std::mutex> lock(mutex_);
    AbandonLocked(failed);
  }
  void AbandonLocked(bool failed) {
    if (!copy_) return;
    (void)copy_->Abort();
    copy_.reset();
    tier_->CopyEnded(meta_.blob, false);
    if (failed) {
      std::lock_guard<std::mutex> stats(tier_->mutex_);
      ++tier_->stats_.copy_failures;
    }
  }

  std::shared_ptr<DiskTier> tier_;
  const EntryMeta meta_;
  std::shared_ptr<arrow::io::RandomAccessFile> remote_;
  int64_t position_ = 0;
  std::mutex mutex_;
  std::unique_ptr<BlobWriter> copy_;  // null once committed or abandoned
  int64_t copied_ = 0;
};

// Writes a new blob to the shared store and a copy to the disk tier; the shared write
// decides success, a failed copy is only dropped.
class TeeBlobWriter final : public BlobWriter {
 public:
  TeeBlobWriter(std::shared_ptr<DiskTier> tier, std::unique_ptr<BlobWriter> shared,
                std::unique_ptr<BlobWriter> copy)
      : BlobWriter(shared->name(), shared->key_id()),
        tier_(std::move(tier)),
        shared_(std::move(shared)),
        copy_(std::move(copy)) {}
  ~TeeBlobWriter() override { (void)Abort(); }

  arrow::Status Write(const void* data, int64_t nbytes) override {
    ARROW_RETURN_NOT_OK(shared_->Write(data, nbytes));
    if (!copy_) return arrow::Status::OK();
    copied_ += nbytes;
    auto st = copied_ > tier_->EntryLimit() ? arrow::Status::OK() : copy_->Write(data, nbytes);
    if (!st.ok() || copied_ > tier_->EntryLimit()) DropCopy(!st.ok());
    return arrow::Status::OK();
  }
  arrow::Status Write(const std::shared_ptr<arrow::Buffer>& data) override {
    return Write(data->data(), data->size());
  }
  arrow::Status Flush() override {
    ARROW_RETURN_NOT_OK(shared_->Flush());
    if (copy_ && !copy_->Flush().ok()) DropCopy(/*failed=*/true);
    return arrow::Status::OK();
  }
  arrow::Result<int64_t> Tell() const override { return shared_->Tell(); }
  bool closed() const override { return shared_->closed(); }
  // The local copy, while it is being written: a shared store (S3) has no local file.
  std::string local_path() const override { return copy_ ? copy_->local_path() : ""; }

  arrow::Status Commit() override {
    ARROW_RETURN_NOT_OK(shared_->Commit());
    if (!copy_) return arrow::Status::OK();
    auto st = copy_->Commit();
    copy_.reset();
    if (!st.ok()) {
      spdlog::warn("disk tier: keeping a copy of {}: {}", name_, st.ToString());
      tier_->CopyEnded(name_, false);
      return arrow::Status::OK();
    }
    std::lock_guard<std::mutex> lock(tier_->mutex_);
    tier_->copying_.erase(name_);
    tier_->unadmitted_[name_] = copied_;
    return arrow::Status::OK();
  }
  arrow::Status Abort() override {
    DropCopy(false);
    return shared_->Abort();
  }

 private:
  void DropCopy(bool failed) {
    if (!copy_) return;
    (void)copy_->Abort();
    copy_.reset();
    tier_->CopyEnded(name_, false);
    if (failed) {
      std::lock_guard<std::mutex> lock(tier_->mutex_);
      ++tier_->stats_.copy_failures;
    }
  }

  std::shared_ptr<DiskTier> tier_;
  std::unique_ptr<BlobWriter> shared_;
  std::unique_ptr<BlobWriter> copy_;
  int64_t copied_ = 0;
};

DiskTier::DiskTier(std::shared_ptr<BlobStore> local, int64_t capacity, int64_t max_entry_bytes,
                   std::shared_ptr<const EvictionPolicy> policy)
    : local_(std::move(local)),
      capacity_(capacity),
      max_entry_bytes_(max_entry_bytes),
      queue_(std::move(policy)) {
  stats_.capacity = capacity;
}

arrow::Status DiskTier::Load() {
  ARROW_RETURN_NOT_OK(local_->RemoveAllTemporaries().status());
  ARROW_ASSIGN_OR_RAISE(auto copies, local_->List(kDataRoot));
  // Oldest first, so that recency starts out as the order they were written in.
  std::stable_sort(copies.begin(), copies.end(), [](const BlobInfo& a, const BlobInfo& b) {
    return a.modified_ms < b.modified_ms;
  });
  for (const auto& copy : copies) {
    if (copy.size < 0) {  // not a blob this store could have written (damaged)
      Quarantine(copy.name, arrow::Status::IOError("its size is not one of a whole blob"));
      continue;
    }
    Added(copy.name, copy.size, 0, /*new_copy=*/false);
  }
  if (!copies.empty()) {
    spdlog::info("disk tier: kept {} copies from the last run ({} of {})", queue_.size(),
                 FormatByteSize(queue_.total_bytes()), FormatByteSize(capacity_));
  }
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> DiskTier::Lookup(
    const EntryMeta& meta) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!queue_.Touch(meta.blob)) return nullptr;
  }
  auto file = local_->OpenReader(meta.blob, BlobHint{meta.bytes, ""});
  if (!file.ok() && file.status().IsKeyError()) {  // removed from disk by hand
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.Remove(meta.blob);
    return nullptr;
  }
  if (!file.ok()) {
    Quarantine(meta.blob, file.status());
    return nullptr;
  }
  // A copy of another size is not this blob's (truncated, or written under another
  // configuration, e.g. encrypted while this run does not encrypt).
  auto size = (*file)->GetSize();
  if (!size.ok() || *size != meta.bytes) {
    Quarantine(meta.blob, size.ok() ? arrow::Status::IOError("the copy has ", *size,
                                                             " bytes, the entry ", meta.bytes)
                                    : size.status());
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  ++stats_.hits;
  return file;
}

std::shared_ptr<arrow::io::RandomAccessFile> DiskTier::CopyOnRead(
    const EntryMeta& meta, std::shared_ptr<arrow::io::RandomAccessFile> remote) {
  if (meta.bytes > EntryLimit()) return remote;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.Contains(meta.blob) || !copying_.insert(meta.blob).second) return remote;
  }
  auto copy = local_->OpenWriter(meta.blob);
  if (!copy.ok()) {
    spdlog::warn("disk tier: copying {}: {}", meta.blob, copy.status().ToString());
    CopyEnded(meta.blob, false);
    return remote;
  }
  return std::make_shared<CopyingReader>(shared_from_this(), meta, std::move(remote),
                                         std::move(*copy));
}

std::unique_ptr<BlobWriter> DiskTier::TeeWriter(std::unique_ptr<BlobWriter> shared) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!copying_.insert(shared->name()).second) return shared;
  }
  auto copy = local_->OpenWriter(shared->name());
  if (!copy.ok()) {
    spdlog::warn("disk tier: copying {}: {}", shared->name(), copy.status().ToString());
    CopyEnded(shared->name(), false);
    return shared;
  }
  return std::make_unique<TeeBlobWriter>(shared_from_this(), std::move(shared),
                                         std::move(*copy));
}

void DiskTier::Admit(const EntryMeta& meta) {
  int64_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = unadmitted_.find(meta.blob);
    if (it == unadmitted_.end()) return;
    bytes = it->second;
    unadmitted_.erase(it);
  }
  Added(meta.blob, bytes, static_cast<double>(meta.cost_ms) / 1000.0);
}

void DiskTier::Added(const std::string& blob, int64_t bytes, double cost_s, bool new_copy) {
  std::vector<std::string> victims;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.Insert(blob, bytes, cost_s);
    if (new_copy) ++stats_.copies_made;
    bool fits = true;
    victims = queue_.PickVictims(0, 0, capacity_, 0,
                                 [&](const std::string& name) { return name == blob; }, &fits);
    if (!fits) victims.push_back(blob);  // larger than the whole tier
    for (const auto& victim : victims) queue_.Remove(victim);
  }
  for (const auto& victim : victims) {
    auto st = local_->Delete(victim);
    if (!st.ok()) spdlog::warn("disk tier: removing {}: {}", victim, st.ToString());
  }
}

void DiskTier::CopyEnded(const std::string& blob, bool /*kept*/) {
  std::lock_guard<std::mutex> lock(mutex_);
  copying_.erase(blob);
}

void DiskTier::Erase(const std::string& blob) { Drop(blob, /*damaged=*/false); }

void DiskTier::Quarantine(const std::string& blob, const arrow::Status& why) {
  spdlog::warn("disk tier: dropping the copy of {}: {}", blob, why.ToString());
  Drop(blob, /*damaged=*/true);
}

void DiskTier::Drop(const std::string& blob, bool damaged) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const bool held = queue_.Contains(blob) || unadmitted_.count(blob) > 0;
    queue_.Remove(blob);
    unadmitted_.erase(blob);
    if (damaged) ++stats_.damaged;
    if (!held && !damaged) return;  // a damaged file goes even if it was never accounted
  }
  auto st = local_->Delete(blob);
  if (!st.ok()) spdlog::warn("disk tier: removing {}: {}", blob, st.ToString());
}

bool DiskTier::Contains(const std::string& blob) {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.Contains(blob);
}

DiskTierStats DiskTier::Stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  DiskTierStats stats = stats_;
  stats.bytes = queue_.total_bytes();
  stats.entries = static_cast<int64_t>(queue_.size());
  return stats;
}

}  // namespace quiver
