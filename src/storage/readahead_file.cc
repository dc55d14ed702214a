#include "storage/readahead_file.h"

#include <algorithm>
#include <cstring>
#include <mutex>

namespace quiver {

ReadaheadFile::ReadaheadFile(std::shared_ptr<arrow::io::RandomAccessFile> inner, int64_t size,
                             int64_t chunk_bytes, int depth, int64_t direct_below)
    : inner_(std::move(inner)),
      size_(size),
      chunk_bytes_(std::max<int64_t>(chunk_bytes, 1)),
      depth_(std::max(depth, 1)),
      direct_below_(direct_below) {}

ReadaheadFile::~ReadaheadFile() = default;

arrow::Status ReadaheadFile::DoClose() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return arrow::Status::OK();
  closed_ = true;
  // Reads in flight still use the inner file: let them end before closing it.
  for (auto& pending : queue_) pending.data.Wait();
  DropQueue();
  current_.reset();
  return inner_->Close();
}

void ReadaheadFile::FillQueue() {
  while (static_cast<int>(queue_.size()) < depth_ && next_offset_ < size_) {
    const int64_t n = std::min(chunk_bytes_, size_ - next_offset_);
    queue_.push_back(Pending{next_offset_, inner_->ReadAsync(next_offset_, n)});
    next_offset_ += n;
    ++chunks_requested_;
  }
}

void ReadaheadFile::DropQueue() {
  // The reads in flight finish on the IO executor; their buffers are simply released.
  queue_.clear();
  next_offset_ = position_;
}

arrow::Result<std::shared_ptr<arrow::Buffer>> ReadaheadFile::CurrentChunk(
    int64_t* chunk_offset) {
  if (current_ && position_ >= current_offset_ &&
      position_ < current_offset_ + current_->size()) {
    *chunk_offset = current_offset_;
    return current_;
  }
  current_.reset();
  // Chunks the reader skipped over (a forward Seek within the queue) are dropped.
  while (!queue_.empty() && queue_.front().offset + chunk_bytes_ <= position_) {
    queue_.pop_front();
  }
  if (queue_.empty() || queue_.front().offset > position_) DropQueue();
  FillQueue();
  Pending front = std::move(queue_.front());
  queue_.pop_front();
  FillQueue();  // keep `depth_` in flight while the reader works through this one
  ARROW_ASSIGN_OR_RAISE(auto data, front.data.result());
  const int64_t expected = std::min(chunk_bytes_, size_ - front.offset);
  if (data->size() != expected) {
    return arrow::Status::IOError("blob is shorter than its recorded ", size_, " bytes: read ",
                                  data->size(), " of ", expected, " bytes at offset ",
                                  front.offset);
  }
  current_ = std::move(data);
  current_offset_ = front.offset;
  if (position_ >= current_offset_ + current_->size()) {
    return arrow::Status::UnknownError("read-ahead lost its place at offset ", position_);
  }
  *chunk_offset = current_offset_;
  return current_;
}

arrow::Result<std::shared_ptr<arrow::Buffer>> ReadaheadFile::DoRead(int64_t nbytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  return ReadLocked(nbytes);
}

arrow::Result<int64_t> ReadaheadFile::DoRead(int64_t nbytes, void* out) {
  std::lock_guard<std::mutex> lock(mutex_);
  return ReadLocked(nbytes, out);
}

arrow::Result<std::shared_ptr<arrow::Buffer>> ReadaheadFile::ReadLocked(int64_t nbytes) {
  if (closed_) return arrow::Status::Invalid("read from a closed file");
  nbytes = std::max<int64_t>(0, std::min(nbytes, size_ - position_));
  if (nbytes == 0) return std::make_shared<arrow::Buffer>(nullptr, 0);
  if (position_ + nbytes <= direct_below_) {
    ARROW_ASSIGN_OR_RAISE(auto direct, inner_->ReadAt(position_, nbytes));
    position_ += direct->size();
    return direct;
  }
  int64_t offset = 0;
  ARROW_ASSIGN_OR_RAISE(auto chunk, CurrentChunk(&offset));
  const int64_t within = position_ - offset;
  if (chunk->size() - within >= nbytes) {  // inside one chunk: a slice, no copy
    position_ += nbytes;
    return arrow::SliceBuffer(chunk, within, nbytes);
  }
  ARROW_ASSIGN_OR_RAISE(auto out, arrow::AllocateResizableBuffer(nbytes));
  ARROW_ASSIGN_OR_RAISE(int64_t got, ReadLocked(nbytes, out->mutable_data()));
  ARROW_RETURN_NOT_OK(out->Resize(got));
  return std::shared_ptr<arrow::Buffer>(std::move(out));
}

arrow::Result<int64_t> ReadaheadFile::ReadLocked(int64_t nbytes, void* out) {
  if (closed_) return arrow::Status::Invalid("read from a closed file");
  nbytes = std::max<int64_t>(0, std::min(nbytes, size_ - position_));
  if (position_ + nbytes <= direct_below_) {
    ARROW_ASSIGN_OR_RAISE(int64_t got, inner_->ReadAt(position_, nbytes, out));
    position_ += got;
    return got;
  }
  int64_t copied = 0;
  while (copied < nbytes) {
    int64_t offset = 0;
    ARROW_ASSIGN_OR_RAISE(auto chunk, CurrentChunk(&offset));
    const int64_t within = position_ - offset;
    const int64_t n = std::min(nbytes - copied, chunk->size() - within);
    std::memcpy(static_cast<uint8_t*>(out) + copied, chunk->data() + within, n);
    copied += n;
    position_ += n;
  }
  return copied;
}

arrow::Status ReadaheadFile::DoSeek(int64_t position) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (position < 0 || position > size_) {
    return arrow::Status::Invalid("seek to ", position, " outside a blob of ", size_, " bytes");
  }
  position_ = position;
  return arrow::Status::OK();  // CurrentChunk() drops what the new position makes useless
}

// Reads at a position are served from the read-ahead too: Arrow's streams over a
// RandomAccessFile (RandomAccessFile::GetStream, which the IPC message reader is given)
// read with ReadAt, front to back. A jump elsewhere restarts the read-ahead there.
arrow::Result<int64_t> ReadaheadFile::DoReadAt(int64_t position, int64_t nbytes,
                                               bool allow_short_read, void* out) {
  std::lock_guard<std::mutex> lock(mutex_);
  ARROW_RETURN_NOT_OK(CheckRange(position, nbytes, allow_short_read));
  const int64_t cursor = position_;  // ReadAt does not move the file position
  position_ = position;
  auto got = ReadLocked(nbytes, out);
  position_ = cursor;
  return got;
}

arrow::Result<std::shared_ptr<arrow::Buffer>> ReadaheadFile::DoReadAt(int64_t position,
                                                                      int64_t nbytes,
                                                                      bool allow_short_read) {
  std::lock_guard<std::mutex> lock(mutex_);
  ARROW_RETURN_NOT_OK(CheckRange(position, nbytes, allow_short_read));
  const int64_t cursor = position_;  // ReadAt does not move the file position
  position_ = position;
  auto got = ReadLocked(nbytes);
  position_ = cursor;
  return got;
}

arrow::Status ReadaheadFile::CheckRange(int64_t position, int64_t nbytes,
                                        bool allow_short_read) const {
  if (position < 0 || nbytes < 0 || position > size_) {
    return arrow::Status::Invalid("read of ", nbytes, " bytes at ", position,
                                  " outside a blob of ", size_, " bytes");
  }
  if (!allow_short_read && position + nbytes > size_) {
    return arrow::Status::IOError("read of ", nbytes, " bytes at ", position,
                                  " past the end of a blob of ", size_, " bytes");
  }
  return arrow::Status::OK();
}

}  // namespace quiver
