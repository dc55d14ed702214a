#include "storage/blob_store.h"

#include <arrow/buffer.h>

namespace quiver {

arrow::Status ValidateBlobName(const std::string& name) {
  if (name.empty() || name.front() == '/' || name.front() == '.' || name.back() == '/') {
    return arrow::Status::Invalid("invalid blob name '", name, "'");
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string::npos) slash = name.size();
    std::string_view part(name.data() + start, slash - start);
    if (part.empty() || part == "." || part == "..") {
      return arrow::Status::Invalid("invalid blob name '", name, "'");
    }
    start = slash + 1;
  }
  return arrow::Status::OK();
}

arrow::Status BlobStore::WriteAll(const std::string& name, std::string_view bytes) {
  ARROW_ASSIGN_OR_RAISE(auto writer, OpenWriter(name));
  auto st = writer->Write(bytes.data(), static_cast<int64_t>(bytes.size()));
  if (st.ok()) st = writer->Commit();
  if (!st.ok()) {
    (void)writer->Abort();
  }
  return st;
}

namespace {

class StoreUnavailableDetail final : public arrow::StatusDetail {
 public:
  const char* type_id() const override { return "quiver::store::unavailable"; }
  std::string ToString() const override { return "store unavailable"; }
};

}  // namespace

arrow::Status StoreUnavailable(const arrow::Status& status) {
  if (status.ok()) return status;
  return arrow::Status(status.code(), status.message(),
                       std::make_shared<StoreUnavailableDetail>());
}

bool IsStoreUnavailable(const arrow::Status& status) {
  return !status.ok() && status.detail() &&
         std::string(status.detail()->type_id()) == "quiver::store::unavailable";
}

arrow::Result<std::string> BlobStore::ReadAll(const std::string& name, const BlobHint& hint) {
  ARROW_ASSIGN_OR_RAISE(auto file, OpenReader(name, hint));
  ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
  ARROW_ASSIGN_OR_RAISE(auto buffer, file->ReadAt(0, size));
  return buffer->ToString();
}

}  // namespace quiver
