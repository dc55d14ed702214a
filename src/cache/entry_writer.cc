#include "cache/entry_writer.h"

#include "common/rejection.h"

#include <arrow/type.h>

namespace quiver {

EntryWriter::EntryWriter(std::string key, std::string node, std::unique_ptr<BlobWriter> blob,
                         int64_t max_bytes, std::string limit_name)
    : key_(std::move(key)),
      node_(std::move(node)),
      blob_(std::move(blob)),
      counted_(blob_.get()),
      max_bytes_(max_bytes),
      limit_name_(std::move(limit_name)) {}

EntryWriter::~EntryWriter() { Abort(); }

void EntryWriter::SetSchema(const arrow::Schema& schema) {
  Checksum sum;
  const std::string& fp = schema.fingerprint();
  const std::string& mfp = schema.metadata_fingerprint();
  sum.Update(fp.data(), fp.size());
  sum.Update(mfp.data(), mfp.size());
  schema_fingerprint_ = sum.HexDigest();
}

arrow::Status EntryWriter::WritePayload(const arrow::ipc::IpcPayload& payload) {
  if (done_) return arrow::Status::Invalid("entry '", key_, "' is already finished");
  if (!stream_) {
    auto made = arrow::ipc::internal::MakePayloadStreamWriter(&counted_);
    if (!made.ok()) return Fail(made.status());
    stream_ = std::move(*made);
  }
  auto st = stream_->WritePayload(payload);
  if (!st.ok()) return Fail(st);
  if (counted_.bytes_written() > max_bytes_) {
    const auto setting = limit_name_.substr(0, limit_name_.find(';'));
    return Fail(Reject(arrow::Status::CapacityError("resource exhausted: '", key_, "' exceeds ",
                                                    limit_name_, " (", max_bytes_, " bytes)"),
                       RejectionKind::kTooLarge, setting, max_bytes_));
  }
  return arrow::Status::OK();
}

arrow::Status EntryWriter::Flush() {
  if (done_) return arrow::Status::Invalid("entry '", key_, "' is already finished");
  auto st = counted_.Flush();
  return st.ok() ? st : Fail(st);
}

arrow::Result<EntryMeta> EntryWriter::Finish() {
  if (done_) return arrow::Status::Invalid("entry '", key_, "' is already finished");
  if (!stream_) return Fail(arrow::Status::Invalid("entry '", key_, "' has no schema"));
  auto st = stream_->Close();  // writes the end-of-stream marker
  if (st.ok()) st = blob_->Commit();
  if (!st.ok()) return Fail(st);
  done_ = true;
  EntryMeta meta;
  meta.key = key_;
  meta.node = node_;
  meta.cost_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - started_)
                     .count();
  meta.blob = blob_->name();
  meta.key_id = blob_->key_id();
  meta.bytes = counted_.bytes_written();
  meta.rows = rows_;
  meta.batches = batches_;
  meta.schema_fingerprint = schema_fingerprint_;
  meta.checksum = counted_.HexDigest();
  return meta;
}

void EntryWriter::Abort() {
  if (done_) return;
  done_ = true;
  (void)blob_->Abort();
}

}  // namespace quiver
