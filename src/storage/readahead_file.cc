#include "storage/readahead_file.h"

#include <algorithm>
#include <cstring>

namespace quiver {

ReadaheadFile::ReadaheadFile(std::shared_ptr<arrow::io::RandomAccessFile> inner, int64_t size,
                             int64_t chunk_bytes, int depth)
    : inner_(std::move(inner)),
      size_(size),
      chunk_bytes_(std::max<int64_t>(chunk_bytes, 1)),
      depth_(std::max(depth, 1)) {}

ReadaheadFile::~ReadaheadFile() = default;

arrow::Status ReadaheadFile::DoClose() {
  if (closed_) return arrow::Status::OK();
  closed_ = true;
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
  if (closed_) return arrow::Status::Invalid("read from a closed file");
  nbytes = std::max<int64_t>(0, std::min(nbytes, size_ - position_));
  if (nbytes == 0) return std::make_shared<arrow::Buffer>(nullptr, 0);
  int64_t offset = 0;
  ARROW_ASSIGN_OR_RAISE(auto chunk, CurrentChunk(&offset));
  const int64_t within = position_ - offset;
  if (chunk->size() - within >= nbytes) {  // inside one chunk: a slice, no copy
    position_ += nbytes;
    return arrow::SliceBuffer(chunk, within, nbytes);
  }
  ARROW_ASSIGN_OR_RAISE(auto out, arrow::AllocateResizableBuffer(nbytes));
  ARROW_ASSIGN_OR_RAISE(int64_t got, DoRead(nbytes, out->mutable_data()));
  ARROW_RETURN_NOT_OK(out->Resize(got));
  return std::shared_ptr<arrow::Buffer>(std::move(out));
}

arrow::Result<int64_t> ReadaheadFile::DoRead(int64_t nbytes, void* out) {
  if (closed_) return arrow::Status::Invalid("read from a closed file");
  nbytes = std::max<int64_t>(0, std::min(nbytes, size_ - position_));
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
  if (position < 0 || position > size_) {
    return arrow::Status::Invalid("seek to ", position, " outside a blob of ", size_, " bytes");
  }
  position_ = position;
  return arrow::Status::OK();  // CurrentChunk() drops what the new position makes useless
}

arrow::Result<int64_t> ReadaheadFile::DoReadAt(int64_t position, int64_t nbytes,
                                               bool allow_short_read, void* out) {
  return inner_->ReadAt(position, nbytes, allow_short_read, out);
}

arrow::Result<std::shared_ptr<arrow::Buffer>> ReadaheadFile::DoReadAt(int64_t position,
                                                                      int64_t nbytes,
                                                                      bool allow_short_read) {
  return inner_->ReadAt(position, nbytes, allow_short_read);
}

}  // namespace quiver
