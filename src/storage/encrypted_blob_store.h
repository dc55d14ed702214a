// EncryptedBlobStore: encryption at rest (AES-256-GCM) for the blobs of any BlobStore.
//
// A decorator: every blob is written to the inner store as a header and a sequence of
// fixed-size chunks (64 KiB of plaintext each), each sealed with AES-256-GCM under a key
// derived for that blob (HKDF-SHA256 of the master key and a random salt in the header).
// Each chunk's nonce and additional data bind the header, the blob name, the chunk index and
// whether it is the last chunk, so a reader detects any change: flipped bytes, truncation,
// reordered, duplicated or dropped chunks, and blobs swapped between names. The byte layout
// and what it protects are in docs/design/encryption.md.
//
// Sizes: BlobInfo::size (List) and BlobHint::size (OpenReader) are plaintext sizes, the ones
// an index records; the inner store is given ciphertext sizes, computed from them (the layout
// is deterministic). A listed blob whose stored size is not that of any valid encrypted blob
// (damaged, or not written by this class) is listed with size -1.
//
// Keys: blobs are written with the current key; a blob names its key's id in its header and
// is read with that key, the current one or one of `old_keys` (rotation: keep the old key
// until every blob written with it is gone). A blob whose key is not configured cannot be
// read: an IOError naming the id, which is not IsTampered() (the key may be configured on
// another node, or again later: the blob must not be taken out of service).
//
// Move() moves the ciphertext as it is: since the name is authenticated, a moved blob cannot
// be read under its new name (Move only quarantines damaged entries; read a quarantined blob
// under its original name by moving it back).
//
// Errors: anything that fails authentication -- a bad or unsupported header, a size that no
// encrypted blob has, a failed tag check -- is an IOError naming the blob
// (and the chunk) with a detail that IsTampered() recognises. No byte of a chunk is returned
// before its tag is checked.
//
// Memory: a reader keeps one decrypted chunk (plus the buffers it returned, which callers
// own); a writer one plaintext and one ciphertext chunk.
//
// Thread-safety: as BlobStore. A reader's ReadAt may be called concurrently.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <arrow/status.h>

#include "storage/blob_store.h"
#include "storage/key_file.h"

namespace quiver {

class EncryptedBlobStore final : public BlobStore {
 public:
  /// Plaintext bytes per chunk (format version 1).
  static constexpr int64_t kChunkSize = 64 << 10;
  /// Bytes of the header before the first chunk.
  static constexpr int64_t kHeaderSize = 64;
  /// Bytes of the GCM tag after each chunk's ciphertext.
  static constexpr int64_t kTagSize = 16;

  /// \brief Encrypt the blobs of `inner` with `current`; read blobs written with `current` or
  /// any of `old_keys`. Invalid if a key does not have 32 bytes or its id is not its
  /// fingerprint (KeyFingerprint).
  static arrow::Result<std::shared_ptr<EncryptedBlobStore>> Make(
      std::shared_ptr<BlobStore> inner, EncryptionKey current,
      std::vector<EncryptionKey> old_keys = {});
  ~EncryptedBlobStore() override;

  /// \brief The stored size of a blob of `plaintext_size` bytes.
  static int64_t CiphertextSize(int64_t plaintext_size);
  /// \brief The plaintext size of a stored blob of `ciphertext_size` bytes; -1 if no
  /// encrypted blob has that size.
  static int64_t PlaintextSize(int64_t ciphertext_size);

  /// The id of the key new blobs are written with (also each writer's key_id()).
  const std::string& current_key_id() const { return current_id_; }

  /// A writer's key_id() is the current key's id.
  arrow::Result<std::unique_ptr<BlobWriter>> OpenWriter(const std::string& name) override;
  using BlobStore::OpenReader;
  /// `hint.size` is the plaintext size; a stored blob of another size is an error
  /// (IsTampered). `hint.key_id` is passed to the inner store as it is; the key is chosen
  /// by the id in the blob's header.
  arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenReader(
      const std::string& name, const BlobHint& hint) override;
  arrow::Status Delete(const std::string& name) override { return inner_->Delete(name); }
  arrow::Status Move(const std::string& from, const std::string& to) override {
    return inner_->Move(from, to);
  }
  arrow::Result<std::vector<BlobInfo>> List(const std::string& prefix) override;
  arrow::Result<int64_t> RemoveTemporaries(bool own, int64_t modified_before_ms) override {
    return inner_->RemoveTemporaries(own, modified_before_ms);
  }
  arrow::Result<int64_t> RemoveAllTemporaries() override {
    return inner_->RemoveAllTemporaries();
  }
  /// "<inner> (aes-256-gcm, key <id>)".
  std::string Describe() const override;

  const std::shared_ptr<BlobStore>& inner() const { return inner_; }

 private:
  EncryptedBlobStore(std::shared_ptr<BlobStore> inner, std::string current_id,
                     std::map<std::string, std::string> keys)
      : inner_(std::move(inner)), current_id_(std::move(current_id)), keys_(std::move(keys)) {}

  std::shared_ptr<BlobStore> inner_;
  std::string current_id_;
  std::map<std::string, std::string> keys_;  // id -> 32 key bytes (wiped on destruction)
};

/// \brief Whether `status` says an encrypted blob failed authentication (tampered with,
/// damaged, truncated). A blob written with a key that is not configured is not.
bool IsTampered(const arrow::Status& status);

}  // namespace quiver
