#include "format/checksum.h"

#include <fmt/format.h>
#include <xxhash.h>

namespace quiver {

struct Checksum::State {
  XXH3_state_t* xxh = XXH3_createState();
  ~State() { XXH3_freeState(xxh); }
};

Checksum::Checksum() : state_(std::make_unique<State>()) { XXH3_64bits_reset(state_->xxh); }
Checksum::~Checksum() = default;

void Checksum::Update(const void* data, size_t size) {
  XXH3_64bits_update(state_->xxh, data, size);
}

std::string Checksum::HexDigest() const {
  return fmt::format("{:016x}", XXH3_64bits_digest(state_->xxh));
}

arrow::Result<std::string> ChecksumFile(arrow::io::RandomAccessFile* file) {
  constexpr int64_t kChunk = 8 << 20;
  ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
  Checksum sum;
  for (int64_t pos = 0; pos < size; pos += kChunk) {
    ARROW_ASSIGN_OR_RAISE(auto chunk, file->ReadAt(pos, std::min(kChunk, size - pos)));
    sum.Update(chunk->data(), static_cast<size_t>(chunk->size()));
  }
  return sum.HexDigest();
}

}  // namespace quiver

namespace quiver {

arrow::Status ChecksummingOutputStream::Write(const void* data, int64_t nbytes) {
  ARROW_RETURN_NOT_OK(sink_->Write(data, nbytes));
  checksum_.Update(data, static_cast<size_t>(nbytes));
  bytes_ += nbytes;
  return arrow::Status::OK();
}

arrow::Status ChecksummingOutputStream::Write(const std::shared_ptr<arrow::Buffer>& data) {
  return Write(data->data(), data->size());
}

}  // namespace quiver
