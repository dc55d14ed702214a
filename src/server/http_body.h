// Response bodies of the HTTP interface, streamed through cpp-httplib's chunked transfer: a
// PayloadSource's stored IPC messages framed as an Arrow IPC stream (the bytes on disk, never
// decoded), or any arrow::io::OutputStream writer (the encoders of other formats).
//
// A body holds no engine lock: only the open entry (its file) or its fill reader, released
// when the response ends -- completely, or because the client went away (a failed write ends
// the body; the releaser then drops the source).
//
// Thread-safety: a body is produced by the one thread that serves its connection.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <arrow/io/interfaces.h>
#include <httplib.h>

#include "server/payload_source.h"

namespace quiver {

/// \brief An arrow::io::OutputStream writing into an httplib DataSink (one chunk per Write).
/// A failed write (the client went away, or was too slow for the write timeout) is an
/// IOError.
class SinkOutputStream final : public arrow::io::OutputStream {
 public:
  explicit SinkOutputStream(httplib::DataSink* sink) : sink_(sink) {}
  arrow::Status Write(const void* data, int64_t nbytes) override;
  using arrow::io::OutputStream::Write;
  arrow::Status Close() override {
    closed_ = true;
    return arrow::Status::OK();
  }
  bool closed() const override { return closed_; }
  arrow::Result<int64_t> Tell() const override { return position_; }
  int64_t bytes_written() const { return position_; }

 private:
  httplib::DataSink* sink_;
  int64_t position_ = 0;
  bool closed_ = false;
};

/// What a streamed body reports when it ends: the bytes sent and how it ended.
struct BodyEnd {
  int64_t bytes = 0;
  arrow::Status status;  ///< OK, or why the body stopped early
};

/// \brief Make `response` stream `source` as an Arrow IPC stream (schema, every message,
/// the end-of-stream marker). `done` (may be null) is called once when the body ends.
void StreamIpcBody(httplib::Response* response, std::unique_ptr<PayloadSource> source,
                   std::function<void(const BodyEnd&)> done);

/// \brief Make `response` stream what `write` writes to its OutputStream, with `content_type`.
/// `write` runs once, on the connection's thread, after the handler returns.
void StreamBody(httplib::Response* response, const std::string& content_type,
                std::function<arrow::Status(arrow::io::OutputStream*)> write,
                std::function<void(const BodyEnd&)> done);

}  // namespace quiver
