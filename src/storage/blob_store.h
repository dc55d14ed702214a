// BlobStore: where Quiver keeps bytes (Arrow IPC streams and small manifests).
//
// A blob is an immutable byte string under a name: a relative '/'-separated path whose
// segments are non-empty, not "." or "..", and whose first segment does not start with
// '.' (those names are the store's own). Blobs are written through a BlobWriter that
// streams bytes to a temporary place and either commits -- the blob then appears whole
// under its name, durably -- or aborts, leaving nothing behind. A reader never sees a
// partially written blob. Committing over an existing name replaces it atomically.
//
// Implementations: LocalBlobStore (a directory on local disk, or one that several nodes mount),
// MemoryBlobStore (tests). Both pass the conformance suite in blob_store_test_util.h.
//
// Thread-safety: BlobStore methods are safe to call concurrently. A BlobWriter is used by
// one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/io/interfaces.h>
#include <arrow/result.h>
#include <arrow/status.h>

namespace quiver {

class BlobWriter : public arrow::io::OutputStream {
 public:
  /// \brief Make everything written durable and visible under name(). No writes after.
  virtual arrow::Status Commit() = 0;
  /// \brief Discard everything written. Idempotent; implied by destruction before Commit.
  /// (It is arrow::io::FileInterface::Abort, made pure: every writer must discard.)
  arrow::Status Abort() override = 0;
  /// Close() is Abort() unless Commit() already succeeded.
  arrow::Status Close() override { return Abort(); }

  const std::string& name() const { return name_; }
  /// The id of the key the blob is encrypted with ("": none), for BlobHint::key_id.
  const std::string& key_id() const { return key_id_; }
  /// \brief The path of a local file that holds the bytes written so far, as they were
  /// written (plaintext), up to the last Flush(); "" when there is none (the bytes go
  /// elsewhere, are transformed, or the writer stopped keeping such a file). The file may be
  /// renamed by Commit() or removed by Abort(): open it while this returns it, and read it
  /// through the open file. Readers need no fsync: Flush() writes to the file, which is
  /// enough for them. Default: "".
  virtual std::string local_path() const { return ""; }

 protected:
  explicit BlobWriter(std::string name, std::string key_id = "")
      : name_(std::move(name)), key_id_(std::move(key_id)) {}
  std::string name_;
  std::string key_id_;
};

struct BlobInfo {
  std::string name;
  int64_t size = 0;
  int64_t modified_ms = 0;  ///< when it was committed (or last moved), Unix epoch ms
};

/// What a caller knows of a committed blob, e.g. from the index entry naming it.
struct BlobHint {
  int64_t size = -1;   ///< its size in bytes; -1: unknown
  std::string key_id;  ///< the id of the encryption key it was written with; "": unknown
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  /// \brief Start writing blob `name`. Nothing is visible until Commit().
  virtual arrow::Result<std::unique_ptr<BlobWriter>> OpenWriter(const std::string& name) = 0;

  /// \brief Open a committed blob for random access (memory-mapped where possible).
  /// A missing blob is a KeyError naming it. `hint` is what the caller knows of the blob
  /// (an index entry records it): with its size a store need not ask for it (S3 with SSE-C
  /// cannot HEAD an object, see s3_blob_store.h); with its key id a store that encrypts
  /// uses that key first.
  virtual arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenReader(
      const std::string& name, const BlobHint& hint) = 0;
  arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenReader(
      const std::string& name) {
    return OpenReader(name, BlobHint{});
  }

  /// \brief Remove a blob, durably: once this returns, a crash does not bring it back.
  /// Removing a missing blob is not an error.
  virtual arrow::Status Delete(const std::string& name) = 0;

  /// \brief Move a committed blob to another name (used to quarantine damaged entries).
  virtual arrow::Status Move(const std::string& from, const std::string& to) = 0;

  /// \brief List committed blobs whose name starts with `prefix` (a whole-segment
  /// prefix such as "manifests/" or "" for everything), sorted by name.
  virtual arrow::Result<std::vector<BlobInfo>> List(const std::string& prefix) = 0;

  /// \brief Remove what writers left behind when their process died before Commit or Abort:
  /// those of this store's own writer tag if `own` (the node restarted: none of them runs),
  /// and those last written before `modified_before_ms` if it is > 0 (long abandoned). A
  /// writer that is still running must not be matched. Returns how many were removed.
  virtual arrow::Result<int64_t> RemoveTemporaries(bool own, int64_t modified_before_ms) = 0;
  /// \brief Remove every temporary: only for a process that owns the store alone.
  virtual arrow::Result<int64_t> RemoveAllTemporaries() = 0;

  /// \brief A short human description for logs, e.g. "local:/var/lib/quiver".
  virtual std::string Describe() const = 0;

  /// \brief Write a small blob in one call (write, commit).
  arrow::Status WriteAll(const std::string& name, std::string_view bytes);
  /// \brief Read a whole blob into memory (`hint` as for OpenReader).
  arrow::Result<std::string> ReadAll(const std::string& name, const BlobHint& hint = {});
};

/// \brief Check a blob name; the error names it.
arrow::Status ValidateBlobName(const std::string& name);

/// \brief `status` (an IOError) marked as "the store could not be reached" (a network
/// error, a timeout): the server answers UNAVAILABLE, not UNKNOWN.
arrow::Status StoreUnavailable(const arrow::Status& status);
/// \brief Whether StoreUnavailable() marked `status`.
bool IsStoreUnavailable(const arrow::Status& status);

}  // namespace quiver
