#include "server/http_body.h"

#include <arrow/io/buffered.h>
#include <arrow/memory_pool.h>
#include <spdlog/spdlog.h>

namespace quiver {

namespace {

constexpr int64_t kChunkBytes = 64 << 10;
constexpr const char* kArrowStream = "application/vnd.apache.arrow.stream";

// The IPC stream format's end-of-stream marker: a continuation token and a zero length.
constexpr uint8_t kEndOfStream[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0};

arrow::Status WriteIpcStream(PayloadSource* source, arrow::io::OutputStream* out) {
  const auto options = arrow::ipc::IpcWriteOptions::Defaults();
  int32_t metadata_length = 0;
  ARROW_ASSIGN_OR_RAISE(auto schema, source->Schema());
  ARROW_RETURN_NOT_OK(arrow::ipc::WriteIpcPayload(schema, options, out, &metadata_length));
  while (true) {
    ARROW_ASSIGN_OR_RAISE(auto payload, source->Next());
    if (!payload) break;
    ARROW_RETURN_NOT_OK(arrow::ipc::WriteIpcPayload(*payload, options, out, &metadata_length));
  }
  return out->Write(kEndOfStream, sizeof(kEndOfStream));
}

}  // namespace

arrow::Status SinkOutputStream::Write(const void* data, int64_t nbytes) {
  if (closed_) return arrow::Status::Invalid("write to a closed HTTP body");
  // cpp-httplib copies each write into a new chunk string (twice): a 64 MiB batch written at
  // once costs several 64 MiB allocations and copies. Slices of kChunkBytes keep it cheap.
  const char* bytes = static_cast<const char*>(data);
  while (nbytes > 0) {
    const int64_t n = std::min(nbytes, kChunkBytes);
    if (!sink_->write(bytes, static_cast<size_t>(n))) {
      return arrow::Status::IOError("the client went away (or did not read within the write "
                                    "timeout) after ", position_, " bytes");
    }
    bytes += n;
    nbytes -= n;
    position_ += n;
  }
  return arrow::Status::OK();
}

void StreamBody(httplib::Response* response, const std::string& content_type,
                std::function<arrow::Status(arrow::io::OutputStream*)> write,
                std::function<void(const BodyEnd&)> done) {
  struct State {
    std::function<arrow::Status(arrow::io::OutputStream*)> write;
    std::function<void(const BodyEnd&)> done;
    BodyEnd end;
    bool reported = false;
    void Report() {
      if (reported) return;
      reported = true;
      if (done) done(end);
    }
  };
  auto state = std::make_shared<State>();
  state->write = std::move(write);
  state->done = std::move(done);
  response->set_chunked_content_provider(
      content_type,
      [state](size_t /*offset*/, httplib::DataSink& sink) {
        // Coalesce the IPC writer's small writes (prefix, metadata, padding) into chunks;
        // large buffers pass straight through.
        auto raw = std::make_shared<SinkOutputStream>(&sink);
        auto buffered = arrow::io::BufferedOutputStream::Create(kChunkBytes,
                                                                arrow::default_memory_pool(), raw);
        if (buffered.ok()) {
          state->end.status = state->write(buffered->get());
          if (state->end.status.ok()) state->end.status = (*buffered)->Close();
        } else {
          state->end.status = buffered.status();
        }
        state->end.bytes = raw->bytes_written();
        if (!state->end.status.ok()) {
          // Ending without the final empty chunk tells the client the body is incomplete;
          // an error after the headers cannot change the status any more.
          spdlog::warn("HTTP body ended early after {} bytes: {}", state->end.bytes,
                       state->end.status.message());
          state->Report();
          return false;
        }
        sink.done();
        state->Report();
        return true;
      },
      [state](bool /*success*/) {
        // The connection may end before the provider ever ran (client gone at once).
        if (!state->reported) {
          state->end.status = arrow::Status::IOError("the client went away before the body");
          state->Report();
        }
        state->write = nullptr;  // drop the source (entry file, fill reader) now
      });
}

void StreamIpcBody(httplib::Response* response, std::unique_ptr<PayloadSource> source,
                   std::function<void(const BodyEnd&)> done) {
  std::shared_ptr<PayloadSource> shared = std::move(source);
  StreamBody(
      response, kArrowStream,
      [shared](arrow::io::OutputStream* out) { return WriteIpcStream(shared.get(), out); },
      std::move(done));
}

}  // namespace quiver
