// Arrow IPC bytes: the pass-through reader that serves stored entries (StoredStream), and the
// stream reader plus full validation that a put's received batches go through.
#include <cstddef>
#include <cstdint>
#include <memory>

#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>

#include "format/stored_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto buffer = std::make_shared<arrow::Buffer>(data, static_cast<int64_t>(size));
  auto stored = quiver::StoredStream::Open(std::make_shared<arrow::io::BufferReader>(buffer));
  if (stored.ok()) {
    for (int i = 0; i < 1000; ++i) {
      auto next = (*stored)->Next();
      if (!next.ok() || !next->has_value()) break;
    }
  }
  auto reader =
      arrow::ipc::RecordBatchStreamReader::Open(std::make_shared<arrow::io::BufferReader>(buffer));
  if (reader.ok()) {
    for (int i = 0; i < 1000; ++i) {
      std::shared_ptr<arrow::RecordBatch> batch;
      if (!(*reader)->ReadNext(&batch).ok() || !batch) break;
      (void)batch->ValidateFull();
    }
  }
  return 0;
}
