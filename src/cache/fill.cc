#include "cache/fill.h"

#include <arrow/buffer.h>
#include <arrow/ipc/message.h>

#include "format/stored_stream.h"

namespace quiver {

namespace {

int64_t PayloadBytes(const arrow::ipc::IpcPayload& payload) {
  return payload.body_length + (payload.metadata ? payload.metadata->size() : 0);
}

// The message at `offset` of `file`, which holds complete messages up to `end`, as a payload
// of the bytes read (not decoded); *length: the bytes it takes in the file.
arrow::Result<arrow::ipc::IpcPayload> ReadMessageAt(
    const std::shared_ptr<arrow::io::RandomAccessFile>& file, int64_t offset, int64_t end,
    int64_t* length) {
  ARROW_ASSIGN_OR_RAISE(auto input,
                        arrow::io::RandomAccessFile::GetStream(file, offset, end - offset));
  ARROW_ASSIGN_OR_RAISE(auto message, arrow::ipc::ReadMessage(input.get()));
  if (!message) {
    return arrow::Status::IOError("the fill's file has no message at offset ", offset);
  }
  ARROW_ASSIGN_OR_RAISE(*length, input->Tell());
  return PayloadFromMessage(*message);
}

}  // namespace

void Fill::SetSchema(std::shared_ptr<arrow::Schema> schema, arrow::ipc::IpcPayload payload) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    schema_ = std::move(schema);
    schema_payload_ = std::move(payload);
  }
  cv_.notify_all();
}

void Fill::UseFile(std::shared_ptr<arrow::io::RandomAccessFile> file, int64_t offset) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (EndLocked() > 0) return;  // too late: messages went to memory already
  file_ = std::move(file);
  file_start_ = file_end_ = offset;
  file_open_ = true;
}

void Fill::AppendedToFile(int64_t end) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!file_open_) return;  // a caller's bug: see REQUIRES
    appended_bytes_ += end - file_end_;
    file_end_ = end;
    base_ = ++file_messages_;  // nothing is in memory while the file grows
  }
  cv_.notify_all();
}

void Fill::Append(arrow::ipc::IpcPayload payload) {
  std::unique_lock<std::mutex> lock(mutex_);
  file_open_ = false;
  const int64_t bytes = PayloadBytes(payload);
  appended_bytes_ += bytes;
  kept_bytes_ += bytes;
  payloads_.push_back(std::move(payload));
  // A late joiner needs every payload since the first: past the bound, it cannot join.
  if (joinable_ && max_kept_bytes_ > 0 && kept_bytes_ > max_kept_bytes_) joinable_ = false;
  TrimLocked();
  cv_.notify_all();
  if (max_kept_bytes_ > 0) {
    space_.wait(lock, [&] { return kept_bytes_ <= max_kept_bytes_ || finished_; });
  }
}

void Fill::StopCaching(std::string reason) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    StopCachingLocked(std::move(reason));
    TrimLocked();
  }
  space_.notify_all();
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
  space_.notify_all();
}

void Fill::Settle() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    settled_ = true;
  }
  cv_.notify_all();
}

void Fill::WaitSettled() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return settled_; });
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
  // From the first message, unless payloads after the file were dropped already (possible
  // only for the first reader of a fill that was never joinable).
  readers_[id] = Reader{file_ && base_ == file_messages_ ? 0 : base_, -1};
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
  space_.notify_all();
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
  cv_.wait(lock, [&] { return it->second.next < EndLocked() || finished_; });
  Reader& self = it->second;
  if (self.next < file_messages_) {
    // Read without the lock: the announced part of the file does not change.
    auto file = file_;
    const int64_t offset = self.file_offset < 0 ? file_start_ : self.file_offset;
    const int64_t end = file_end_;
    lock.unlock();
    int64_t length = 0;
    auto payload = ReadMessageAt(file, offset, end, &length);
    if (!payload.ok()) {
      return arrow::Status::IOError("reading query '", key_, "' from its file: ",
                                    payload.status().message());
    }
    lock.lock();
    self.file_offset = offset + length;  // only this reader's thread touches `self`
    ++self.next;
    return std::move(*payload);
  }
  if (self.next < EndLocked()) {
    auto payload = payloads_[self.next - base_];
    ++self.next;
    if (TrimLocked()) space_.notify_all();
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
  return static_cast<int64_t>(EndLocked());
}

int64_t Fill::appended_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return appended_bytes_;
}

int64_t Fill::kept_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return kept_bytes_;
}

bool Fill::reading_file() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return file_open_;
}

bool Fill::joinable() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return joinable_;
}

bool Fill::TrimLocked() {
  if (joinable_) return false;  // a joiner may still need the first payload
  size_t low = EndLocked();
  for (const auto& [id, r] : readers_) low = std::min(low, r.next);
  bool dropped = false;
  while (base_ < low && !payloads_.empty()) {
    kept_bytes_ -= PayloadBytes(payloads_.front());
    payloads_.pop_front();
    ++base_;
    dropped = true;
  }
  return dropped;
}

}  // namespace quiver
