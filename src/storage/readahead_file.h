// ReadaheadFile: sequential reading of a remote blob (S3) with a bounded read-ahead.
//
// The hit path reads a stored IPC stream front to back in small pieces (a message's length,
// its metadata, its body). Against S3 every piece would be a GET of its own. A ReadaheadFile
// turns sequential Read()s into ranged reads of `chunk_bytes` each, keeping up to `depth` of
// them in flight ahead of the reader (RandomAccessFile::ReadAsync on the file's IO
// executor), so the next chunk is usually there when the reader reaches it.
//
// Memory: at most `depth` chunks in flight plus the one being read; a Read() that spans
// chunks is assembled into a buffer of its own size (an IPC message larger than a chunk).
// So a streaming hit holds at most (depth + 1) x chunk_bytes plus its largest message.
// ReadAt() reads through the read-ahead as well (Arrow's streams over a file, such as the
// one the IPC message reader gets, read with ReadAt); a ReadAt elsewhere than where the
// last read ended restarts the read-ahead at its position.
//
// Thread-safety: all methods are safe to call concurrently (one mutex; reads are served in
// turn, which is what a sequential reader does anyway).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>

#include <arrow/buffer.h>
#include <arrow/io/concurrency.h>
#include <arrow/io/interfaces.h>
#include <arrow/util/future.h>

namespace quiver {

class ReadaheadFile final
    : public arrow::io::internal::RandomAccessFileConcurrencyWrapper<ReadaheadFile> {
 public:
  /// \brief Read `inner` (of `size` bytes) ahead in `chunk_bytes` ranges, `depth` at a time.
  /// Reads that end below `direct_below` go straight to `inner` (which holds those bytes
  /// already, e.g. what it read at open): reading only an entry's schema reads nothing ahead.
  ReadaheadFile(std::shared_ptr<arrow::io::RandomAccessFile> inner, int64_t size,
                int64_t chunk_bytes, int depth, int64_t direct_below = 0);
  ~ReadaheadFile() override;

  bool closed() const override { return closed_; }
  /// Chunks requested from the inner file so far (for tests and stats).
  int64_t chunks_requested() const { return chunks_requested_; }

 protected:
  friend RandomAccessFileConcurrencyWrapper<ReadaheadFile>;
  arrow::Status DoClose();
  arrow::Result<int64_t> DoTell() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return position_;
  }
  arrow::Result<int64_t> DoRead(int64_t nbytes, void* out);
  arrow::Result<std::shared_ptr<arrow::Buffer>> DoRead(int64_t nbytes);
  arrow::Status DoSeek(int64_t position);
  arrow::Result<int64_t> DoGetSize() { return size_; }
  arrow::Result<int64_t> DoReadAt(int64_t position, int64_t nbytes, bool allow_short_read,
                                  void* out);
  arrow::Result<std::shared_ptr<arrow::Buffer>> DoReadAt(int64_t position, int64_t nbytes,
                                                         bool allow_short_read);

 private:
  struct Pending {
    int64_t offset;
    arrow::Future<std::shared_ptr<arrow::Buffer>> data;
  };
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadLocked(int64_t nbytes);
  arrow::Result<int64_t> ReadLocked(int64_t nbytes, void* out);
  arrow::Status CheckRange(int64_t position, int64_t nbytes, bool allow_short_read) const;
  /// Request chunks until `depth_` are queued ahead of the reader (or the end is reached).
  void FillQueue();
  /// The chunk holding `position_`, waiting for it if needed.
  arrow::Result<std::shared_ptr<arrow::Buffer>> CurrentChunk(int64_t* chunk_offset);
  /// Drop queued chunks (a seek away from them); waits for none.
  void DropQueue();

  mutable std::mutex mutex_;
  std::shared_ptr<arrow::io::RandomAccessFile> inner_;
  const int64_t size_;
  const int64_t chunk_bytes_;
  const int depth_;
  const int64_t direct_below_;
  int64_t position_ = 0;
  int64_t next_offset_ = 0;  // start of the next chunk to request
  std::deque<Pending> queue_;
  std::shared_ptr<arrow::Buffer> current_;  // the chunk the reader is in
  int64_t current_offset_ = -1;
  int64_t chunks_requested_ = 0;
  bool closed_ = false;
};

}  // namespace quiver
