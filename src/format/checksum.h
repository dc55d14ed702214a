// Streaming XXH3-64 checksum of stored files.
//
// XXH3 runs at memory bandwidth, so checksumming a blob while it is written costs little;
// it guards against torn or bit-rotted files, not against an adversary.
//
// Thread-safety: a Checksum is not safe for concurrent use.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <arrow/buffer.h>
#include <arrow/io/interfaces.h>
#include <arrow/result.h>

namespace quiver {

class Checksum {
 public:
  Checksum();
  ~Checksum();
  Checksum(const Checksum&) = delete;
  Checksum& operator=(const Checksum&) = delete;

  void Update(const void* data, size_t size);
  /// \brief Return the digest of everything passed to Update so far, as 16 hex digits.
  std::string HexDigest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// \brief Checksum a whole file, reading it in chunks.
arrow::Result<std::string> ChecksumFile(arrow::io::RandomAccessFile* file);

}  // namespace quiver

namespace quiver {

/// An OutputStream decorator that checksums and counts every byte on its way to `sink`.
/// Close() does not close the sink: the owner of the sink decides whether it commits.
class ChecksummingOutputStream final : public arrow::io::OutputStream {
 public:
  explicit ChecksummingOutputStream(arrow::io::OutputStream* sink) : sink_(sink) {}

  arrow::Status Write(const void* data, int64_t nbytes) override;
  arrow::Status Write(const std::shared_ptr<arrow::Buffer>& data) override;
  arrow::Status Flush() override { return sink_->Flush(); }
  arrow::Status Close() override {
    closed_ = true;
    return arrow::Status::OK();
  }
  bool closed() const override { return closed_; }
  arrow::Result<int64_t> Tell() const override { return bytes_; }

  int64_t bytes_written() const { return bytes_; }
  std::string HexDigest() const { return checksum_.HexDigest(); }

 private:
  arrow::io::OutputStream* sink_;
  Checksum checksum_;
  int64_t bytes_ = 0;
  bool closed_ = false;
};

}  // namespace quiver
