#include "storage/encrypted_blob_store.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>

#include <arrow/buffer.h>
#include <arrow/io/interfaces.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

namespace quiver {

namespace {

// Header (kHeaderSize bytes, integers big-endian):
//   [0, 8)   magic "QUIVRENC"      [8, 10)  format version (1)   [10, 12) flags (0)
//   [12, 16) plaintext chunk size  [16, 32) key id (16 hex digits) [32, 64) HKDF salt
constexpr char kMagic[8] = {'Q', 'U', 'I', 'V', 'R', 'E', 'N', 'C'};
constexpr uint16_t kVersion = 1;
constexpr size_t kKeyIdOffset = 16;
constexpr size_t kKeyIdSize = 16;
constexpr size_t kSaltOffset = 32;
constexpr size_t kSaltSize = 32;
constexpr size_t kNonceSize = 12;
constexpr char kHkdfInfo[] = "quiver encrypted blob v1 aes-256-gcm";

constexpr int64_t kChunk = EncryptedBlobStore::kChunkSize;
constexpr int64_t kHeader = EncryptedBlobStore::kHeaderSize;
constexpr int64_t kTag = EncryptedBlobStore::kTagSize;
constexpr int64_t kSealedChunk = kChunk + kTag;

using Header = std::array<uint8_t, kHeader>;

void PutBigEndian(uint64_t value, uint8_t* out, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i) out[i] = static_cast<uint8_t>(value >> (8 * (bytes - 1 - i)));
}

uint64_t GetBigEndian(const uint8_t* in, size_t bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes; ++i) value = value << 8 | in[i];
  return value;
}

class TamperDetail final : public arrow::StatusDetail {
 public:
  static constexpr const char kTypeId[] = "quiver::encrypted_blob_tampered";
  const char* type_id() const override { return kTypeId; }
  std::string ToString() const override { return "encrypted blob failed authentication"; }
};

template <typename... Args>
arrow::Status Tampered(const std::string& name, Args&&... args) {
  static const auto detail = std::make_shared<TamperDetail>();
  return arrow::Status::IOError("encrypted blob '", name, "': ", std::forward<Args>(args)...)
      .WithDetail(detail);
}

const EVP_CIPHER* Aes256Gcm() {
  // Fetched once: an implicit fetch on every chunk costs a lookup under a lock.
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

arrow::Status OpenSslError(const char* what) {
  return arrow::Status::IOError("OpenSSL ", what, " failed");
}

// The per-blob key: HKDF-SHA256(master key, salt from the header).
arrow::Status DeriveBlobKey(const std::string& master, const uint8_t* salt, uint8_t* out) {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr);
  if (ctx == nullptr) return OpenSslError("HKDF context");
  size_t out_len = 32;
  bool ok = EVP_PKEY_derive_init(ctx) > 0 && EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) > 0 &&
            EVP_PKEY_CTX_set1_hkdf_salt(ctx, salt, static_cast<int>(kSaltSize)) > 0 &&
            EVP_PKEY_CTX_set1_hkdf_key(ctx, reinterpret_cast<const uint8_t*>(master.data()),
                                       static_cast<int>(master.size())) > 0 &&
            EVP_PKEY_CTX_add1_hkdf_info(ctx, reinterpret_cast<const uint8_t*>(kHkdfInfo),
                                        static_cast<int>(sizeof(kHkdfInfo) - 1)) > 0 &&
            EVP_PKEY_derive(ctx, out, &out_len) > 0 && out_len == 32;
  EVP_PKEY_CTX_free(ctx);
  return ok ? arrow::Status::OK() : OpenSslError("HKDF");
}

// Seals and opens the chunks of one blob. Nonce = chunk index (8 bytes) || 0 0 0 || final
// flag; additional data = header || name length (4 bytes) || name || chunk index || final
// flag. Thread-safe (each call has its own cipher context).
class BlobCipher {
 public:
  BlobCipher(const Header& header, const std::string& name) {
    aad_prefix_.assign(header.begin(), header.end());
    uint8_t length[4];
    PutBigEndian(name.size(), length, 4);
    aad_prefix_.insert(aad_prefix_.end(), length, length + 4);
    aad_prefix_.insert(aad_prefix_.end(), name.begin(), name.end());
  }
  ~BlobCipher() { OPENSSL_cleanse(key_.data(), key_.size()); }

  arrow::Status Init(const std::string& master, const Header& header) {
    return DeriveBlobKey(master, header.data() + kSaltOffset, key_.data());
  }

  // Encrypts `n` bytes of `plain` into `out`, followed by the tag (n + kTag bytes).
  arrow::Status Seal(uint64_t index, bool final, const uint8_t* plain, int64_t n,
                     uint8_t* out) const {
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    if (!ctx || !Start(ctx.get(), /*encrypt=*/true, index, final) ||
        (n > 0 && EVP_EncryptUpdate(ctx.get(), out, &len, plain, static_cast<int>(n)) != 1) ||
        EVP_EncryptFinal_ex(ctx.get(), out + n, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag, out + n) != 1) {
      return OpenSslError("AES-256-GCM encryption");
    }
    return arrow::Status::OK();
  }

  // Decrypts `sealed` (n bytes of ciphertext, then the tag) into `out`; false if it fails
  // authentication (then `out` holds garbage), an error if OpenSSL fails otherwise.
  arrow::Result<bool> Open(uint64_t index, bool final, const uint8_t* sealed, int64_t n,
                           uint8_t* out) const {
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    uint8_t tag[kTag];
    std::memcpy(tag, sealed + n, kTag);
    if (!ctx || !Start(ctx.get(), /*encrypt=*/false, index, final) ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag, tag) != 1) {
      return OpenSslError("AES-256-GCM decryption");
    }
    return (n == 0 || EVP_DecryptUpdate(ctx.get(), out, &len, sealed, static_cast<int>(n)) == 1) &&
           EVP_DecryptFinal_ex(ctx.get(), out + n, &len) == 1;
  }

 private:
  bool Start(EVP_CIPHER_CTX* ctx, bool encrypt, uint64_t index, bool final) const {
    uint8_t nonce[kNonceSize] = {};
    PutBigEndian(index, nonce, 8);
    nonce[kNonceSize - 1] = final ? 1 : 0;
    uint8_t suffix[9];
    PutBigEndian(index, suffix, 8);
    suffix[8] = final ? 1 : 0;
    int len = 0;
    auto init = encrypt ? EVP_EncryptInit_ex : EVP_DecryptInit_ex;
    auto update = encrypt ? EVP_EncryptUpdate : EVP_DecryptUpdate;
    return Aes256Gcm() != nullptr && init(ctx, Aes256Gcm(), nullptr, key_.data(), nonce) == 1 &&
           update(ctx, nullptr, &len, aad_prefix_.data(), static_cast<int>(aad_prefix_.size())) ==
               1 &&
           update(ctx, nullptr, &len, suffix, sizeof(suffix)) == 1;
  }

  std::array<uint8_t, 32> key_{};
  std::vector<uint8_t> aad_prefix_;
};

class EncryptedBlobWriter final : public BlobWriter {
 public:
  EncryptedBlobWriter(std::string name, std::string key_id, std::unique_ptr<BlobWriter> inner,
                      std::unique_ptr<BlobCipher> cipher)
      : BlobWriter(std::move(name), std::move(key_id)),
        inner_(std::move(inner)),
        cipher_(std::move(cipher)),
        sealed_(kSealedChunk) {
    buffer_.reserve(kChunk);
  }
  ~EncryptedBlobWriter() override {
    (void)Abort();
    OPENSSL_cleanse(buffer_.data(), buffer_.size());
  }

  arrow::Status Write(const void* data, int64_t nbytes) override {
    if (done_) return arrow::Status::Invalid("blob '", name_, "' is already committed or aborted");
    const auto* bytes = static_cast<const uint8_t*>(data);
    while (nbytes > 0) {
      // A full chunk is sealed only once more data shows it is not the last one.
      if (static_cast<int64_t>(buffer_.size()) == kChunk) {
        ARROW_RETURN_NOT_OK(SealChunk(buffer_.data(), kChunk, /*final=*/false));
        buffer_.clear();
      }
      if (buffer_.empty() && nbytes > kChunk) {  // seal straight from the caller's bytes
        ARROW_RETURN_NOT_OK(SealChunk(bytes, kChunk, /*final=*/false));
        bytes += kChunk;
        nbytes -= kChunk;
        position_ += kChunk;
        continue;
      }
      const int64_t take = std::min<int64_t>(nbytes, kChunk - static_cast<int64_t>(buffer_.size()));
      buffer_.insert(buffer_.end(), bytes, bytes + take);
      bytes += take;
      nbytes -= take;
      position_ += take;
    }
    return arrow::Status::OK();
  }

  /// Flushes the chunks sealed so far (the open chunk stays buffered until it is full).
  arrow::Status Flush() override { return inner_->Flush(); }
  bool closed() const override { return done_; }
  arrow::Result<int64_t> Tell() const override { return position_; }

  arrow::Status Commit() override {
    if (done_) return arrow::Status::Invalid("blob '", name_, "' is already committed or aborted");
    auto st = SealChunk(buffer_.data(), static_cast<int64_t>(buffer_.size()), /*final=*/true);
    if (st.ok()) st = inner_->Commit();
    if (!st.ok()) {
      (void)Abort();
      return st;
    }
    done_ = true;
    return arrow::Status::OK();
  }

  arrow::Status Abort() override {
    if (done_) return arrow::Status::OK();
    done_ = true;
    return inner_->Abort();
  }

 private:
  // A failure aborts the blob: a chunk may be missing, nothing more may be written.
  arrow::Status SealChunk(const uint8_t* plain, int64_t n, bool final) {
    auto st = cipher_->Seal(next_chunk_, final, plain, n, sealed_.data());
    ++next_chunk_;
    if (st.ok()) st = inner_->Write(sealed_.data(), n + kTag);
    if (!st.ok()) (void)Abort();
    return st;
  }

  std::unique_ptr<BlobWriter> inner_;
  std::unique_ptr<BlobCipher> cipher_;
  std::vector<uint8_t> buffer_;  // plaintext of the open chunk
  std::vector<uint8_t> sealed_;  // ciphertext and tag of the chunk being written
  uint64_t next_chunk_ = 0;
  int64_t position_ = 0;
  bool done_ = false;
};

class EncryptedBlobReader final : public arrow::io::RandomAccessFile {
 public:
  EncryptedBlobReader(std::string name, std::shared_ptr<arrow::io::RandomAccessFile> inner,
                      std::unique_ptr<BlobCipher> cipher, int64_t size)
      : name_(std::move(name)),
        inner_(std::move(inner)),
        cipher_(std::move(cipher)),
        size_(size),
        chunks_(size == 0 ? 1 : (size + kChunk - 1) / kChunk) {}

  // Authenticates the last chunk, so that a truncated blob fails at open and GetSize() is
  // the authenticated size.
  arrow::Status VerifyLastChunk() { return Chunk(chunks_ - 1).status(); }

  arrow::Status Close() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return arrow::Status::OK();
    closed_ = true;
    cached_.reset();
    return inner_->Close();
  }
  bool closed() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
  }
  arrow::Result<int64_t> GetSize() override { return size_; }

  arrow::Status Seek(int64_t position) override {
    if (position < 0) return arrow::Status::Invalid("negative seek position ", position);
    std::lock_guard<std::mutex> lock(position_mutex_);
    position_ = position;
    return arrow::Status::OK();
  }
  arrow::Result<int64_t> Tell() const override {
    std::lock_guard<std::mutex> lock(position_mutex_);
    return position_;
  }
  arrow::Result<int64_t> Read(int64_t nbytes, void* out) override {
    std::lock_guard<std::mutex> lock(position_mutex_);
    ARROW_ASSIGN_OR_RAISE(int64_t n, CopyAt(position_, nbytes, static_cast<uint8_t*>(out)));
    position_ += n;
    return n;
  }
  arrow::Result<std::shared_ptr<arrow::Buffer>> Read(int64_t nbytes) override {
    std::lock_guard<std::mutex> lock(position_mutex_);
    ARROW_ASSIGN_OR_RAISE(auto buffer, BufferAt(position_, nbytes));
    position_ += buffer->size();
    return buffer;
  }

  arrow::Result<int64_t> ReadAt(int64_t position, int64_t nbytes, void* out) override {
    return CopyAt(position, nbytes, static_cast<uint8_t*>(out));
  }
  arrow::Result<int64_t> ReadAt(int64_t position, int64_t nbytes, bool allow_short_read,
                                void* out) override {
    ARROW_ASSIGN_OR_RAISE(int64_t n, CopyAt(position, nbytes, static_cast<uint8_t*>(out)));
    if (!allow_short_read && n < nbytes) return ShortRead(position, nbytes, n);
    return n;
  }
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadAt(int64_t position,
                                                       int64_t nbytes) override {
    return BufferAt(position, nbytes);
  }
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadAt(int64_t position, int64_t nbytes,
                                                       bool allow_short_read) override {
    ARROW_ASSIGN_OR_RAISE(auto buffer, BufferAt(position, nbytes));
    if (!allow_short_read && buffer->size() < nbytes) {
      return ShortRead(position, nbytes, buffer->size());
    }
    return buffer;
  }

 private:
  arrow::Status ShortRead(int64_t position, int64_t nbytes, int64_t got) const {
    return arrow::Status::IOError("blob '", name_, "': read of ", nbytes, " bytes at ", position,
                                  " found ", got, " (size ", size_, ")");
  }

  // Clamps a read to the blob; the number of bytes to read.
  arrow::Result<int64_t> Clamp(int64_t position, int64_t nbytes) const {
    if (position < 0 || nbytes < 0) {
      return arrow::Status::Invalid("blob '", name_, "': invalid read of ", nbytes, " bytes at ",
                                    position);
    }
    return position >= size_ ? 0 : std::min(nbytes, size_ - position);
  }

  // A read inside one chunk is a slice of the decrypted chunk; one that spans chunks is
  // assembled into a new buffer.
  arrow::Result<std::shared_ptr<arrow::Buffer>> BufferAt(int64_t position, int64_t nbytes) {
    ARROW_ASSIGN_OR_RAISE(int64_t n, Clamp(position, nbytes));
    if (n > 0 && position / kChunk == (position + n - 1) / kChunk) {
      ARROW_ASSIGN_OR_RAISE(auto chunk, Chunk(position / kChunk));
      return arrow::SliceBuffer(std::move(chunk), position % kChunk, n);
    }
    ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> out, arrow::AllocateBuffer(n));
    ARROW_RETURN_NOT_OK(CopyAt(position, n, out->mutable_data()).status());
    return out;
  }

  arrow::Result<int64_t> CopyAt(int64_t position, int64_t nbytes, uint8_t* out) {
    ARROW_ASSIGN_OR_RAISE(int64_t n, Clamp(position, nbytes));
    for (int64_t done = 0; done < n;) {
      const int64_t at = position + done;
      ARROW_ASSIGN_OR_RAISE(auto chunk, Chunk(at / kChunk));
      const int64_t take = std::min(n - done, chunk->size() - at % kChunk);
      std::memcpy(out + done, chunk->data() + at % kChunk, static_cast<size_t>(take));
      done += take;
    }
    return n;
  }

  // The decrypted, authenticated chunk `index`: the cached one or read now. Decryption runs
  // outside the lock, so concurrent readers of different chunks do not wait for each other.
  arrow::Result<std::shared_ptr<arrow::Buffer>> Chunk(int64_t index) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (closed_) return arrow::Status::Invalid("blob '", name_, "' is closed");
      if (cached_ && cached_index_ == index) return cached_;
    }
    const bool final = index == chunks_ - 1;
    const int64_t plain_size = final ? size_ - index * kChunk : kChunk;
    ARROW_ASSIGN_OR_RAISE(auto sealed,
                          inner_->ReadAt(kHeader + index * kSealedChunk, plain_size + kTag));
    if (sealed->size() != plain_size + kTag) {
      return Tampered(name_, "chunk ", index, " of ", chunks_, " is truncated");
    }
    ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> plain,
                          arrow::AllocateBuffer(plain_size));
    ARROW_ASSIGN_OR_RAISE(bool authentic, cipher_->Open(static_cast<uint64_t>(index), final,
                                                        sealed->data(), plain_size,
                                                        plain->mutable_data()));
    if (!authentic) {
      return Tampered(name_, "chunk ", index, " of ", chunks_,
                      " fails authentication (modified, truncated, reordered, or not "
                      "written under this name)");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    cached_index_ = index;
    cached_ = plain;
    return plain;
  }

  const std::string name_;
  const std::shared_ptr<arrow::io::RandomAccessFile> inner_;
  const std::unique_ptr<BlobCipher> cipher_;
  const int64_t size_;    // plaintext bytes
  const int64_t chunks_;  // >= 1
  mutable std::mutex mutex_;  // guards closed_ and the chunk cache
  bool closed_ = false;
  int64_t cached_index_ = -1;
  std::shared_ptr<arrow::Buffer> cached_;
  mutable std::mutex position_mutex_;  // guards position_ (Read, Seek, Tell)
  int64_t position_ = 0;
};

bool IsKeyId(std::string_view id) {
  return id.size() == kKeyIdSize && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

bool IsTampered(const arrow::Status& status) {
  return status.detail() != nullptr &&
         std::strcmp(status.detail()->type_id(), TamperDetail::kTypeId) == 0;
}

int64_t EncryptedBlobStore::CiphertextSize(int64_t plaintext_size) {
  const int64_t chunks = plaintext_size == 0 ? 1 : (plaintext_size + kChunk - 1) / kChunk;
  return kHeader + plaintext_size + chunks * kTag;
}

int64_t EncryptedBlobStore::PlaintextSize(int64_t ciphertext_size) {
  const int64_t body = ciphertext_size - kHeader;
  if (body < kTag) return -1;
  const int64_t chunks = (body + kSealedChunk - 1) / kSealedChunk;
  const int64_t last = body - (chunks - 1) * kSealedChunk;
  // Only an empty blob has an empty (final) chunk.
  if (last < kTag || (chunks > 1 && last == kTag)) return -1;
  return body - chunks * kTag;
}

arrow::Result<std::shared_ptr<EncryptedBlobStore>> EncryptedBlobStore::Make(
    std::shared_ptr<BlobStore> inner, EncryptionKey current, std::vector<EncryptionKey> old_keys) {
  if (!inner) return arrow::Status::Invalid("EncryptedBlobStore needs an inner store");
  std::map<std::string, std::string> keys;
  old_keys.push_back(current);
  for (auto& key : old_keys) {
    if (key.bytes.size() != kEncryptionKeyBytes || key.id != KeyFingerprint(key.bytes)) {
      return arrow::Status::Invalid("encryption key '", key.id,
                                    "' is not a 32-byte key with its fingerprint as id");
    }
    keys[key.id] = std::move(key.bytes);
  }
  return std::shared_ptr<EncryptedBlobStore>(
      new EncryptedBlobStore(std::move(inner), current.id, std::move(keys)));
}

EncryptedBlobStore::~EncryptedBlobStore() {
  for (auto& [id, bytes] : keys_) OPENSSL_cleanse(bytes.data(), bytes.size());
}

std::string EncryptedBlobStore::Describe() const {
  return inner_->Describe() + " (aes-256-gcm, key " + current_id_ + ")";
}

arrow::Result<std::unique_ptr<BlobWriter>> EncryptedBlobStore::OpenWriter(
    const std::string& name) {
  ARROW_RETURN_NOT_OK(ValidateBlobName(name));
  Header header{};
  std::memcpy(header.data(), kMagic, sizeof(kMagic));
  PutBigEndian(kVersion, header.data() + 8, 2);
  PutBigEndian(kChunk, header.data() + 12, 4);
  std::memcpy(header.data() + kKeyIdOffset, current_id_.data(), kKeyIdSize);
  if (RAND_bytes(header.data() + kSaltOffset, kSaltSize) != 1) {
    return OpenSslError("RAND_bytes");
  }
  auto cipher = std::make_unique<BlobCipher>(header, name);
  ARROW_RETURN_NOT_OK(cipher->Init(keys_.at(current_id_), header));
  ARROW_ASSIGN_OR_RAISE(auto inner, inner_->OpenWriter(name));
  ARROW_RETURN_NOT_OK(inner->Write(header.data(), kHeader));
  return std::make_unique<EncryptedBlobWriter>(name, current_id_, std::move(inner),
                                               std::move(cipher));
}

arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> EncryptedBlobStore::OpenReader(
    const std::string& name, const BlobHint& hint) {
  ARROW_RETURN_NOT_OK(ValidateBlobName(name));
  BlobHint inner_hint{hint.size >= 0 ? CiphertextSize(hint.size) : -1, hint.key_id};
  ARROW_ASSIGN_OR_RAISE(auto inner, inner_->OpenReader(name, inner_hint));
  ARROW_ASSIGN_OR_RAISE(int64_t stored, inner->GetSize());
  const int64_t size = PlaintextSize(stored);
  if (size < 0) {
    return Tampered(name, "its ", stored, " bytes are not the size of an encrypted blob ",
                    "(truncated or extended)");
  }
  if (hint.size >= 0 && hint.size != size) {
    return Tampered(name, "holds ", size, " bytes, ", hint.size, " were recorded");
  }
  ARROW_ASSIGN_OR_RAISE(auto header_bytes, inner->ReadAt(0, kHeader));
  if (header_bytes->size() != kHeader) return Tampered(name, "the header is truncated");
  Header header;
  std::memcpy(header.data(), header_bytes->data(), kHeader);
  if (std::memcmp(header.data(), kMagic, sizeof(kMagic)) != 0) {
    return Tampered(name, "the header does not start with the magic 'QUIVRENC'");
  }
  if (const auto version = GetBigEndian(header.data() + 8, 2); version != kVersion) {
    return Tampered(name, "unsupported format version ", version, " (expected ", kVersion, ")");
  }
  if (const auto flags = GetBigEndian(header.data() + 10, 2); flags != 0) {
    return Tampered(name, "unsupported header flags ", flags);
  }
  if (const auto chunk = GetBigEndian(header.data() + 12, 4); chunk != kChunk) {
    return Tampered(name, "unsupported chunk size ", chunk, " (expected ", kChunk, ")");
  }
  const std::string key_id(reinterpret_cast<const char*>(header.data() + kKeyIdOffset),
                           kKeyIdSize);
  if (!IsKeyId(key_id)) return Tampered(name, "the header's key id is not 16 hex digits");
  auto key = keys_.find(key_id);
  if (key == keys_.end()) {
    std::string configured;
    for (const auto& [id, bytes] : keys_) configured += (configured.empty() ? "" : ", ") + id;
    // Not a sign of damage: a key not (or no longer, or not yet) configured on this node.
    // The blob is not served, but it is not taken out of service either.
    return arrow::Status::IOError("encrypted blob '", name, "' was written with key ", key_id,
                                  ", which is not configured (configured: ", configured, ")");
  }
  auto cipher = std::make_unique<BlobCipher>(header, name);
  ARROW_RETURN_NOT_OK(cipher->Init(key->second, header));
  auto reader =
      std::make_shared<EncryptedBlobReader>(name, std::move(inner), std::move(cipher), size);
  ARROW_RETURN_NOT_OK(reader->VerifyLastChunk());
  return reader;
}

arrow::Result<std::vector<BlobInfo>> EncryptedBlobStore::List(const std::string& prefix) {
  ARROW_ASSIGN_OR_RAISE(auto blobs, inner_->List(prefix));
  for (auto& blob : blobs) blob.size = PlaintextSize(blob.size);
  return blobs;
}

}  // namespace quiver
