#include "cache/fill.h"

#include <arrow/buffer.h>

namespace quiver {

void Fill::SetSchema(std::shared_ptr<arrow::Schema> schema, arrow::ipc::IpcPayload payload) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    schema_ = std::move(schema);
    schema_payload_ = std::move(payload);
  }
  cv_.notify_all();
}

void Fill::Append(arrow::ipc::IpcPayload payload) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (joinable_ && max_kept_bytes_ > 0) {
      kept_bytes_ += payload.body_length + (payload.metadata ? payload.metadata->size() : 0);
      if (kept_bytes_ > max_kept_bytes_) {
        StopCachingLocked("result exceeds max_entry_bytes; streamed but not cached");
      }
    }
    payloads_.push_back(std::move(payload));
    TrimLocked();
  }
  cv_.notify_all();
}

void Fill::StopCaching(std::string reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  StopCachingLocked(std::move(reason));
  TrimLocked();
}

void Fill::StopCachingLocked(std::string reason) {
  joinable_ = false;
  if (not_cached_reason_.empty()) not_cached_reason_ = std::move(reason);
}

void Fill::NotCaching(std::string reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (not_cached_reason_.empty()) not_cached_reason_ = std::move(reason);
}

void Fill::Finish(arrow::Status status) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (finished_) return;  // the first end wins (shutdown may end a fill early)
    finished_ = true;
    status_ = std::move(status);
    if (!status_.ok()) joinable_ = false;
  }
  cv_.notify_all();
}

bool Fill::Abandoned() const {
  std::lock_guard<std::mutex> lock(mutex_);
  // A pending hand-over keeps it alive only while the next reader can still attach.
  return ever_attached_ && readers_.empty() && (handovers_ == 0 || !joinable_) && !finished_;
}

std::optional<int> Fill::Attach() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!joinable_ && ever_attached_) return std::nullopt;
  int id = next_reader_++;
  readers_[id] = base_;
  ever_attached_ = true;
  if (handovers_ > 0) --handovers_;
  return id;
}

void Fill::HandOver(int reader) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++handovers_;
  }
  Detach(reader);
}

void Fill::Detach(int reader) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    readers_.erase(reader);
    TrimLocked();
  }
  cv_.notify_all();
}

arrow::Result<std::pair<std::shared_ptr<arrow::Schema>, arrow::ipc::IpcPayload>>
Fill::WaitSchema() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return schema_ != nullptr || finished_; });
  if (!schema_) {
    return status_.ok() ? arrow::Status::IOError("query '", key_, "' produced no schema")
                        : status_;
  }
  return std::make_pair(schema_, schema_payload_);
}

arrow::Result<std::optional<arrow::ipc::IpcPayload>> Fill::WaitNext(int reader) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto it = readers_.find(reader);
  if (it == readers_.end()) return arrow::Status::Invalid("reader is not attached");
  cv_.wait(lock, [&] { return it->second < base_ + payloads_.size() || finished_; });
  if (it->second < base_ + payloads_.size()) {
    auto payload = payloads_[it->second - base_];
    ++it->second;
    TrimLocked();
    return payload;
  }
  if (!status_.ok()) return status_;
  return std::nullopt;
}

std::string Fill::not_cached_reason() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return not_cached_reason_;
}

bool Fill::finished() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return finished_;
}

int64_t Fill::appended() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(base_ + payloads_.size());
}

bool Fill::joinable() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return joinable_;
}

void Fill::TrimLocked() {
  if (joinable_) return;  // a joiner may still need the first payload
  size_t low = base_ + payloads_.size();
  for (const auto& [id, pos] : readers_) low = std::min(low, pos);
  while (base_ < low && !payloads_.empty()) {
    payloads_.pop_front();
    ++base_;
  }
}

}  // namespace quiver
