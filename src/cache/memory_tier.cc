#include "cache/memory_tier.h"

#include <arrow/io/memory.h>

namespace quiver {

std::shared_ptr<arrow::io::RandomAccessFile> MemoryTier::Lookup(const std::string& key,
                                                                const std::string& blob) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = slots_.find({key, blob});
  if (it == slots_.end()) return nullptr;
  queue_.Touch(blob);
  ++hits_;
  return std::make_shared<arrow::io::BufferReader>(it->second.data);
}

arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> MemoryTier::Promote(
    const std::string& key, uint64_t version, const std::string& blob,
    arrow::io::RandomAccessFile* file, double cost_s) {
  ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (capacity_ <= 0 || size > EntryLimitLocked() || size > capacity_) return nullptr;
    if (slots_.count({key, blob})) return nullptr;
  }
  // Copy outside the lock; a memory-mapped file would otherwise stay a view of the disk.
  ARROW_ASSIGN_OR_RAISE(auto view, file->ReadAt(0, size));
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> copy,
                        arrow::Buffer::CopyNonOwned(*view, arrow::default_cpu_memory_manager()));
  auto reader = std::make_shared<arrow::io::BufferReader>(copy);
  std::lock_guard<std::mutex> lock(mutex_);
  Id id{key, blob};
  if (slots_.count(id)) return reader;
  slots_[id] = Slot{std::move(copy), version};
  by_blob_[blob] = id;
  queue_.Insert(blob, size, cost_s);
  bytes_ += size;
  ++promotions_;
  EvictLocked();
  return reader;
}

void MemoryTier::EvictLocked() {
  while (bytes_ > capacity_ && queue_.size() > 0) {
    const std::string victim = queue_.Lowest([](const std::string&) { return false; });
    auto id = by_blob_.find(victim);
    auto it = slots_.find(id->second);
    bytes_ -= it->second.data->size();
    slots_.erase(it);
    by_blob_.erase(id);
    queue_.Remove(victim);
  }
}

void MemoryTier::Erase(const std::string& key, const std::string& blob) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = slots_.find({key, blob});
  if (it == slots_.end()) return;
  bytes_ -= it->second.data->size();
  queue_.Remove(blob);
  by_blob_.erase(blob);
  slots_.erase(it);
}

void MemoryTier::SetCapacity(int64_t capacity) {
  std::lock_guard<std::mutex> lock(mutex_);
  capacity_ = capacity;
  EvictLocked();
}

bool MemoryTier::Contains(const std::string& key, const std::string& blob) {
  std::lock_guard<std::mutex> lock(mutex_);
  return slots_.count({key, blob}) > 0;
}

std::vector<MemoryTier::Copy> MemoryTier::Copies() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Copy> out;
  out.reserve(slots_.size());
  for (const auto& [id, slot] : slots_) out.push_back(Copy{id.first, slot.version, id.second});
  return out;
}

MemoryTierStats MemoryTier::Stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  return {bytes_, static_cast<int64_t>(slots_.size()), hits_, promotions_, capacity_};
}

}  // namespace quiver
