#include "cache/damage_watch.h"

#include <atomic>

#include <arrow/buffer.h>
#include <arrow/io/concurrency.h>

#include "storage/encrypted_blob_store.h"

namespace quiver {

namespace {

class DamageWatch final
    : public arrow::io::internal::RandomAccessFileConcurrencyWrapper<DamageWatch> {
 public:
  DamageWatch(std::shared_ptr<arrow::io::RandomAccessFile> file, DamageCallback on_damage)
      : file_(std::move(file)), on_damage_(std::move(on_damage)) {}
  bool closed() const override { return file_->closed(); }

 protected:
  friend RandomAccessFileConcurrencyWrapper<DamageWatch>;
  arrow::Status DoClose() { return file_->Close(); }
  arrow::Result<int64_t> DoTell() const { return file_->Tell(); }
  arrow::Status DoSeek(int64_t position) { return file_->Seek(position); }
  arrow::Result<int64_t> DoGetSize() { return file_->GetSize(); }
  arrow::Result<std::shared_ptr<arrow::Buffer>> DoRead(int64_t nbytes) {
    return Check(file_->Read(nbytes));
  }
  arrow::Result<int64_t> DoRead(int64_t nbytes, void* out) {
    return Check(file_->Read(nbytes, out));
  }
  arrow::Result<std::shared_ptr<arrow::Buffer>> DoReadAt(int64_t position, int64_t nbytes,
                                                         bool allow_short_read) {
    return Check(file_->ReadAt(position, nbytes, allow_short_read));
  }
  arrow::Result<int64_t> DoReadAt(int64_t position, int64_t nbytes, bool allow_short_read,
                                  void* out) {
    return Check(file_->ReadAt(position, nbytes, allow_short_read, out));
  }

 private:
  template <typename T>
  arrow::Result<T> Check(arrow::Result<T> result) {
    if (!result.ok() && IsTampered(result.status()) && !reported_.exchange(true)) {
      on_damage_(result.status());
    }
    return result;
  }

  std::shared_ptr<arrow::io::RandomAccessFile> file_;
  DamageCallback on_damage_;
  std::atomic<bool> reported_{false};
};

}  // namespace

std::shared_ptr<arrow::io::RandomAccessFile> WatchForDamage(
    std::shared_ptr<arrow::io::RandomAccessFile> file, DamageCallback on_damage) {
  return std::make_shared<DamageWatch>(std::move(file), std::move(on_damage));
}

}  // namespace quiver
