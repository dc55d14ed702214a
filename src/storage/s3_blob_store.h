// S3BlobStore: blobs as objects of an S3 bucket (AWS S3 or an S3-compatible server), below an
// optional key prefix, through Arrow's arrow::fs::S3FileSystem. Nothing of S3 is written by hand.
//
// Writing: a writer streams to a multipart upload (Arrow's ObjectOutputStream, background
// writes; blobs under 10 MiB go as one PutObject at Commit). Commit completes the upload: the
// object appears whole, atomically replacing an older one. Abort, a failed write and the
// writer's destructor abort the upload, so nothing is ever left visible. (Arrow's stream
// completes the upload when destroyed unclosed; the writer never lets that happen.) An
// upload of a process that died is invisible but billed until the bucket's lifecycle rule
// "AbortIncompleteMultipartUpload" removes it: S3 has no visible temporaries, so
// RemoveTemporaries/RemoveAllTemporaries return 0 (Arrow cannot list other processes'
// uploads).
//
// SSE-C: with a current key every object is written encrypted with it, and BlobWriter::key_id()
// names it. Readers use the key BlobHint::key_id names; with an unknown key id (""), the
// current key, then each of `old_keys`, then no key, until the server accepts one -- so a key
// can be rotated: put the old one into old_keys, and old blobs stay readable while new ones
// use the new key. An S3FileSystem carries one SSE-C key, so the store holds one per key.
//
// Arrow 26 gaps with SSE-C, and the routes taken around them (see s3fs.cc):
//  - S3FileSystem::GetFileInfo(path), DeleteFile and OpenInputFile(path) (ObjectInputFile::Init)
//    send a HeadObject without the SSE-C headers: S3 answers 400 for an SSE-C object.
//    OpenReader opens through OpenInputFile(FileInfo) (no HEAD) with the size from the hint,
//    or from a LIST of the parent "directory" (GetFileInfo(FileSelector)) when it is unknown,
//    and reads the blob's first bytes at once: that GET proves the key right and the blob
//    there (a missing blob is a KeyError; Arrow reports GetObject's 404 as an IOError
//    "NO_SUCH_KEY"), and serves the reader's first reads.
//  - Delete: S3FileSystem has no single-object delete without that HEAD. Delete overwrites the
//    name with an empty unencrypted object (the key-less filesystem), which the HEAD of
//    DeleteFile then accepts, and deletes it. Missing blobs are fine.
//  - Move: CopyFile (CopyObject with the SSE-C headers for source and target, no HEAD) with
//    the blob's key, then the Delete above. A missing source is a KeyError.
//  - List: GetFileInfo(FileSelector{recursive, allow_not_found}): LISTs only; the directory
//    markers Arrow creates ("a/b/" after a delete emptied "a/b") are skipped.
// A reader opened before the blob is replaced or deleted reads the new state beyond the
// bytes it holds (S3 has no open file handles); Quiver never reuses a blob name.
//
// Secrets (secret key, session token, SSE-C keys) never appear in an error, a log or Describe().
//
// Thread-safety: safe for concurrent use (S3FileSystem is). A BlobWriter is used by one thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "storage/blob_store.h"

namespace arrow::fs {
class FileSystem;
class S3FileSystem;
}

namespace quiver {

class S3Redactor;

struct S3StoreOptions {
  std::string bucket;
  /// Key prefix of every blob (no leading or trailing '/'), e.g. "quiver/prod". Default: "".
  std::string prefix;
  /// REQUIRES: the bucket's region, e.g. "eu-west-3" (S3-compatible servers accept any).
  std::string region;
  /// "host:port" of an S3-compatible server; "" for AWS.
  std::string endpoint_override;
  std::string scheme = "https";  ///< or "http"
  /// Path-style addressing (https://host/bucket/key), as S3-compatible servers need; false:
  /// virtual-hosted style (https://bucket.host/key). Default: true with an endpoint override.
  bool path_style = true;
  /// PEM file of the CA that signed the server's certificate; "": the system's CAs.
  std::string ca_file;
  double connect_timeout_s = -1;  ///< <0: the AWS SDK's default
  double request_timeout_s = -1;  ///< <0: the AWS SDK's default
  int max_retries = 3;            ///< attempts of the AWS "standard" retry strategy
  /// Explicit credentials; all empty: the AWS default chain (environment, profile, ...).
  std::string access_key;
  std::string secret_key;
  std::string session_token;

  struct SseCKey {
    std::string id;   ///< names the key in index entries (BlobHint::key_id); never secret
    std::string key;  ///< 32 raw bytes (AES-256)
  };
  /// The key new blobs are written with; an empty id: no SSE-C.
  SseCKey sse_c;
  /// Keys of blobs written before a rotation: readable, never written with.
  std::vector<SseCKey> old_keys;
  /// Readers read ahead in ranges of this many bytes, `readahead_depth` at a time (see
  /// readahead_file.h): a streaming hit holds at most (depth + 1) x readahead_bytes, plus
  /// the first 256 KiB read at open and its largest IPC message.
  int64_t readahead_bytes = int64_t{4} << 20;
  int readahead_depth = 2;
};

class S3BlobStore final : public BlobStore {
 public:
  /// \brief Connect and check that the bucket answers (a LIST of the prefix). The error
  /// names the bucket, endpoint and region and says what failed.
  /// `writer_tag` names this process's writers (unused by S3: uploads are invisible).
  static arrow::Result<std::shared_ptr<S3BlobStore>> Open(S3StoreOptions options,
                                                          std::string writer_tag = "");
  ~S3BlobStore() override;

  arrow::Result<std::unique_ptr<BlobWriter>> OpenWriter(const std::string& name) override;
  using BlobStore::OpenReader;
  arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenReader(
      const std::string& name, const BlobHint& hint) override;
  arrow::Status Delete(const std::string& name) override;
  arrow::Status Move(const std::string& from, const std::string& to) override;
  arrow::Result<std::vector<BlobInfo>> List(const std::string& prefix) override;
  /// Always 0: see the header comment (lifecycle rule AbortIncompleteMultipartUpload).
  arrow::Result<int64_t> RemoveTemporaries(bool own, int64_t modified_before_ms) override;
  arrow::Result<int64_t> RemoveAllTemporaries() override;
  /// "s3://bucket/prefix (endpoint, region, sse-c key <id>)".
  std::string Describe() const override;

 private:
  struct Keyed {
    std::string id;  // "" for the key-less filesystem
    std::shared_ptr<arrow::fs::S3FileSystem> fs;
  };
  S3BlobStore() = default;
  /// "bucket/prefix/name", the path Arrow's S3FileSystem takes.
  std::string PathOf(const std::string& name) const;
  /// The filesystems to try for a blob with `key_id` ("": current, old keys, key-less).
  arrow::Result<std::vector<const Keyed*>> Candidates(const std::string& key_id) const;
  std::string Where() const;  // "bucket 'b' at endpoint (region r)" for errors

  S3StoreOptions options_;  // secrets cleared after Open
  std::string writer_tag_;
  std::vector<Keyed> keyed_;  // [0]: the current key (or key-less), then old keys
  Keyed plain_;               // no SSE-C: lists, deletes
  std::shared_ptr<const S3Redactor> redactor_;
};

/// \brief Initialize Arrow's S3 support once per process (AWS SDK log level Error; instance
/// metadata probing disabled unless AWS_EC2_METADATA_DISABLED is set already). S3BlobStore::Open
/// calls it.
arrow::Status EnsureS3Initialized();
/// \brief A key-less S3 filesystem with the connection settings of `options` (region, endpoint,
/// scheme, addressing, CA, timeouts, retries, credentials; bucket and prefix ignored), for
/// reading objects that are not blobs of a store (artifacts). Initializes S3 support.
arrow::Result<std::shared_ptr<arrow::fs::FileSystem>> MakeS3FileSystem(
    const S3StoreOptions& options);
/// \brief Shut the AWS SDK down if EnsureS3Initialized ran: main() calls it before exit, after
/// every S3BlobStore is gone.
void FinalizeS3IfInitialized();

}  // namespace quiver
