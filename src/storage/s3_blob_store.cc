#include "storage/s3_blob_store.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <arrow/buffer.h>
#include <arrow/filesystem/s3fs.h>
#include <arrow/io/memory.h>
#include <arrow/util/async_generator.h>
#include <arrow/util/base64.h>
#include <fmt/format.h>

#include "storage/readahead_file.h"

namespace quiver {

namespace afs = arrow::fs;

namespace {

std::mutex s3_init_mutex;
bool s3_initialized_here = false;

// What a reader gets at open: one GET that proves key and blob, and serves the first reads
// (an IPC stream's schema) from memory.
constexpr int64_t kHeadBytes = 256 << 10;

bool IsNoSuchKey(const arrow::Status& st) {
  const std::string& m = st.message();
  // Arrow passes the SDK's error name through: NO_SUCH_KEY for S3's NoSuchKey, and
  // RESOURCE_NOT_FOUND for a bare 404 (a HEAD-less GET of a missing key on some servers).
  return m.find("NO_SUCH_KEY") != std::string::npos || m.find("NoSuchKey") != std::string::npos ||
         m.find("RESOURCE_NOT_FOUND") != std::string::npos;
}

}  // namespace

// Removes every secret from an error: some S3 servers echo the signed request (with the SSE-C
// key header) in their messages.
class S3Redactor {
 public:
  void Add(const std::string& secret) {
    if (secret.size() >= 4) secrets_.push_back(secret);
  }
  std::string Clean(std::string text) const {
    for (const auto& s : secrets_) {
      for (size_t at = text.find(s); at != std::string::npos; at = text.find(s, at)) {
        text.replace(at, s.size(), "***");
      }
    }
    return text;
  }
  // The secrets removed; a failure to reach the server marked StoreUnavailable.
  arrow::Status Clean(const arrow::Status& st) const {
    if (st.ok()) return st;
    arrow::Status clean(st.code(), Clean(st.message()));
    return IsNetworkError(st.message()) ? StoreUnavailable(clean) : clean;
  }
  // The AWS SDK's error types for a server that cannot be reached or does not answer.
  static bool IsNetworkError(const std::string& m) {
    for (const char* marker : {"NETWORK_CONNECTION", "REQUEST_TIMEOUT", "SERVICE_UNAVAILABLE",
                               "SLOW_DOWN", "curlCode: 7", "curlCode: 28"}) {
      if (m.find(marker) != std::string::npos) return true;
    }
    return false;
  }

 private:
  std::vector<std::string> secrets_;
};

using RedactorPtr = std::shared_ptr<const S3Redactor>;

namespace {

class S3BlobWriter final : public BlobWriter {
 public:
  S3BlobWriter(std::string name, std::string key_id, std::shared_ptr<arrow::io::OutputStream> out,
               RedactorPtr redactor)
      : BlobWriter(std::move(name), std::move(key_id)),
        out_(std::move(out)),
        redactor_(std::move(redactor)) {}
  // Arrow's stream completes the upload when destroyed open: abort it first.
  ~S3BlobWriter() override { (void)Abort(); }

  arrow::Status Write(const void* data, int64_t nbytes) override {
    if (done_) return arrow::Status::Invalid("blob '", name_, "' is already committed or aborted");
    auto st = out_->Write(data, nbytes);
    if (!st.ok()) return Fail(st, "write");
    position_ += nbytes;
    return arrow::Status::OK();
  }
  arrow::Status Write(const std::shared_ptr<arrow::Buffer>& data) override {
    if (done_) return arrow::Status::Invalid("blob '", name_, "' is already committed or aborted");
    auto st = out_->Write(data);
    if (!st.ok()) return Fail(st, "write");
    position_ += data->size();
    return arrow::Status::OK();
  }
  arrow::Status Flush() override { return arrow::Status::OK(); }  // parts go up as they fill
  bool closed() const override { return done_; }
  arrow::Result<int64_t> Tell() const override { return position_; }

  arrow::Status Commit() override {
    if (done_) return arrow::Status::Invalid("blob '", name_, "' is already committed or aborted");
    auto st = out_->Close();
    if (!st.ok()) return Fail(st, "commit");
    done_ = true;
    out_.reset();
    return arrow::Status::OK();
  }

  arrow::Status Abort() override {
    if (done_) return arrow::Status::OK();
    done_ = true;
    arrow::Status st;
    for (int attempt = 0; attempt < 3; ++attempt) {
      st = out_->Abort();
      if (st.ok()) break;
    }
    if (!st.ok()) {
      // Destroying the stream now would complete the upload and publish a partial blob.
      // Keep it alive for the life of the process instead; the bucket's lifecycle rule
      // removes the incomplete upload.
      new std::shared_ptr<arrow::io::OutputStream>(std::move(out_));
      return redactor_->Clean(
          arrow::Status::IOError("abort upload of blob '", name_, "': ", st.message()));
    }
    out_.reset();
    return arrow::Status::OK();
  }

 private:
  arrow::Status Fail(const arrow::Status& st, const char* what) {
    (void)Abort();
    return redactor_->Clean(
        arrow::Status::IOError(what, " blob '", name_, "': ", st.message()));
  }

  std::shared_ptr<arrow::io::OutputStream> out_;
  RedactorPtr redactor_;
  int64_t position_ = 0;
  bool done_ = false;
};

// A RandomAccessFile over an S3 object whose first bytes were read at open.
class S3BlobReader final : public arrow::io::RandomAccessFile {
 public:
  S3BlobReader(std::string name, std::shared_ptr<arrow::io::RandomAccessFile> file,
               std::shared_ptr<arrow::Buffer> head, int64_t size, RedactorPtr redactor)
      : name_(std::move(name)),
        file_(std::move(file)),
        head_(std::move(head)),
        size_(size),
        redactor_(std::move(redactor)) {}

  arrow::Status Close() override {
    closed_ = true;
    head_.reset();
    return file_ ? file_->Close() : arrow::Status::OK();
  }
  bool closed() const override { return closed_; }
  arrow::Result<int64_t> Tell() const override { return pos_; }
  arrow::Result<int64_t> GetSize() override { return size_; }
  arrow::Status Seek(int64_t position) override {
    if (position < 0 || position > size_) {
      return arrow::Status::Invalid("seek to ", position, " in blob '", name_, "' of ", size_,
                                    " bytes");
    }
    pos_ = position;
    return arrow::Status::OK();
  }

  arrow::Result<int64_t> ReadAt(int64_t position, int64_t nbytes, void* out) override {
    ARROW_ASSIGN_OR_RAISE(auto buffer, ReadAt(position, nbytes));
    std::memcpy(out, buffer->data(), static_cast<size_t>(buffer->size()));
    return buffer->size();
  }
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadAt(int64_t position,
                                                       int64_t nbytes) override {
    if (closed_) return arrow::Status::Invalid("blob '", name_, "' is closed");
    if (position < 0 || nbytes < 0) return arrow::Status::Invalid("negative read in '", name_, "'");
    nbytes = std::max<int64_t>(0, std::min(nbytes, size_ - position));
    if (position + nbytes <= head_->size()) return arrow::SliceBuffer(head_, position, nbytes);
    auto read = file_->ReadAt(position, nbytes);
    if (read.ok()) return read;
    if (IsNoSuchKey(read.status())) {
      return arrow::Status::KeyError("blob '", name_, "' not found (deleted while read)");
    }
    return redactor_->Clean(arrow::Status::IOError("read blob '", name_, "' at ", position, ": ",
                                                   read.status().message()));
  }
  arrow::Result<int64_t> Read(int64_t nbytes, void* out) override {
    ARROW_ASSIGN_OR_RAISE(int64_t n, ReadAt(pos_, nbytes, out));
    pos_ += n;
    return n;
  }
  arrow::Result<std::shared_ptr<arrow::Buffer>> Read(int64_t nbytes) override {
    ARROW_ASSIGN_OR_RAISE(auto buffer, ReadAt(pos_, nbytes));
    pos_ += buffer->size();
    return buffer;
  }

 private:
  std::string name_;
  std::shared_ptr<arrow::io::RandomAccessFile> file_;
  std::shared_ptr<arrow::Buffer> head_;
  int64_t size_;
  RedactorPtr redactor_;
  int64_t pos_ = 0;
  bool closed_ = false;
};

// Lists "directory" `dir` (one level, or all below it), LIST requests only.
arrow::Result<std::vector<afs::FileInfo>> ListDir(afs::S3FileSystem& fs, const std::string& dir,
                                                  bool recursive) {
  afs::FileSelector select;
  select.base_dir = dir;
  select.recursive = recursive;
  select.allow_not_found = true;
  return fs.GetFileInfo(select);
}

// The options every filesystem of a store shares (an SSE-C key is added per filesystem).
afs::S3Options BaseOptions(const S3StoreOptions& options) {
  afs::S3Options base;
  if (options.access_key.empty() && options.secret_key.empty()) {
    base = afs::S3Options::Defaults();
  } else {
    base = afs::S3Options::FromAccessKey(options.access_key, options.secret_key,
                                         options.session_token);
  }
  base.region = options.region;
  base.endpoint_override = options.endpoint_override;
  base.scheme = options.scheme;
  base.force_virtual_addressing = !options.path_style;
  base.tls_ca_file_path = options.ca_file;
  base.connect_timeout = options.connect_timeout_s;
  base.request_timeout = options.request_timeout_s;
  base.retry_strategy =
      afs::S3RetryStrategy::GetAwsStandardRetryStrategy(std::max(1, options.max_retries));
  base.background_writes = true;
  // Blobs under one part go up as one PutObject at Commit; larger ones as a multipart upload.
  base.allow_delayed_open = true;
  return base;
}

}  // namespace

arrow::Status EnsureS3Initialized() {
  std::lock_guard<std::mutex> lock(s3_init_mutex);
  if (afs::IsS3Initialized()) return arrow::Status::OK();
  if (afs::IsS3Finalized()) {
    return arrow::Status::Invalid("S3 support was shut down already in this process");
  }
  ::setenv("AWS_EC2_METADATA_DISABLED", "true", /*overwrite=*/0);
  afs::S3GlobalOptions options = afs::S3GlobalOptions::Defaults();
  options.log_level = afs::S3LogLevel::Fatal;
  ARROW_RETURN_NOT_OK(afs::InitializeS3(options));
  s3_initialized_here = true;
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::fs::FileSystem>> MakeS3FileSystem(
    const S3StoreOptions& options) {
  ARROW_RETURN_NOT_OK(EnsureS3Initialized());
  afs::S3Options o = BaseOptions(options);
  o.background_writes = false;
  o.allow_delayed_open = false;
  ARROW_ASSIGN_OR_RAISE(auto fs, afs::S3FileSystem::Make(o));
  return fs;
}

void FinalizeS3IfInitialized() {
  std::lock_guard<std::mutex> lock(s3_init_mutex);
  if (s3_initialized_here && afs::IsS3Initialized()) (void)afs::FinalizeS3();
  s3_initialized_here = false;
}

S3BlobStore::~S3BlobStore() = default;

std::string S3BlobStore::Where() const {
  return fmt::format("S3 bucket '{}' at {} (region {})", options_.bucket,
                     options_.endpoint_override.empty()
                         ? std::string("AWS")
                         : options_.scheme + "://" + options_.endpoint_override,
                     options_.region);
}

std::string S3BlobStore::Describe() const {
  std::string out = "s3://" + options_.bucket + (options_.prefix.empty() ? "" : "/") +
                    options_.prefix + " (" +
                    (options_.endpoint_override.empty()
                         ? std::string("AWS")
                         : options_.scheme + "://" + options_.endpoint_override) +
                    ", " + options_.region + ", ";
  out += options_.sse_c.id.empty() ? "no sse-c" : "sse-c key " + options_.sse_c.id;
  return out + ")";
}

std::string S3BlobStore::PathOf(const std::string& name) const {
  std::string path = options_.bucket;
  if (!options_.prefix.empty()) path += "/" + options_.prefix;
  if (!name.empty()) path += "/" + name;
  return path;
}

arrow::Result<std::shared_ptr<S3BlobStore>> S3BlobStore::Open(S3StoreOptions options,
                                                              std::string writer_tag) {
  while (!options.prefix.empty() && options.prefix.back() == '/') options.prefix.pop_back();
  while (!options.prefix.empty() && options.prefix.front() == '/') options.prefix.erase(0, 1);
  if (options.bucket.empty() || options.bucket.find('/') != std::string::npos) {
    return arrow::Status::Invalid("S3 store: invalid bucket name '", options.bucket, "'");
  }
  if (options.region.empty()) {
    return arrow::Status::Invalid("S3 store for bucket '", options.bucket,
                                  "': a region is required (e.g. eu-west-3)");
  }
  if (options.scheme != "https" && options.scheme != "http") {
    return arrow::Status::Invalid("S3 store: scheme must be https or http, not '",
                                  options.scheme, "'");
  }
  std::vector<const S3StoreOptions::SseCKey*> keys;
  if (!options.sse_c.id.empty()) keys.push_back(&options.sse_c);
  for (const auto& old : options.old_keys) {
    if (old.id.empty()) return arrow::Status::Invalid("S3 store: an old SSE-C key has no id");
    keys.push_back(&old);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i]->key.size() != 32) {
      return arrow::Status::Invalid("S3 store: SSE-C key '", keys[i]->id,
                                    "' must be 32 bytes, not ", keys[i]->key.size());
    }
    for (size_t j = 0; j < i; ++j) {
      if (keys[j]->id == keys[i]->id) {
        return arrow::Status::Invalid("S3 store: SSE-C key id '", keys[i]->id, "' is used twice");
      }
    }
  }
  ARROW_RETURN_NOT_OK(EnsureS3Initialized());

  auto redactor = std::make_shared<S3Redactor>();
  redactor->Add(options.secret_key);
  redactor->Add(options.session_token);
  for (const auto* k : keys) {
    redactor->Add(k->key);
    redactor->Add(arrow::util::base64_encode(k->key));
  }

  afs::S3Options base = BaseOptions(options);

  std::shared_ptr<S3BlobStore> store(new S3BlobStore());
  store->redactor_ = redactor;
  auto make = [&](const std::string& id, const std::string& key) -> arrow::Result<Keyed> {
    afs::S3Options o = base;
    o.sse_customer_key = key;
    auto fs = afs::S3FileSystem::Make(o);
    if (!fs.ok()) return redactor->Clean(fs.status());
    return Keyed{id, *fs};
  };
  ARROW_ASSIGN_OR_RAISE(store->plain_, make("", ""));
  if (keys.empty()) store->keyed_.push_back(store->plain_);
  for (const auto* k : keys) {
    ARROW_ASSIGN_OR_RAISE(auto keyed, make(k->id, k->key));
    store->keyed_.push_back(std::move(keyed));
  }
  // No secret stays in the store's own copy of the options.
  options.secret_key.clear();
  options.session_token.clear();
  options.sse_c.key.clear();
  for (auto& old : options.old_keys) old.key.clear();
  store->options_ = std::move(options);
  store->writer_tag_ = std::move(writer_tag);

  // Reachable, the bucket there and ours to read: HEAD the bucket, LIST the prefix.
  auto fail = [&](const arrow::Status& st) {
    const std::string& m = st.message();
    std::string what = "check failed";
    if (m.find("ACCESS_DENIED") != std::string::npos || m.find("403") != std::string::npos ||
        m.find("INVALID_ACCESS_KEY_ID") != std::string::npos ||
        m.find("SIGNATURE_DOES_NOT_MATCH") != std::string::npos) {
      what = "access denied (check the credentials and the bucket policy)";
    } else if (m.find("NETWORK_CONNECTION") != std::string::npos ||
               m.find("connect") != std::string::npos || m.find("curl") != std::string::npos) {
      what = "cannot connect to the endpoint";
    } else if (m.find("NO_SUCH_BUCKET") != std::string::npos) {
      what = "no such bucket";
    }
    return arrow::Status::IOError(store->Where(), ": ", what, ": ", redactor->Clean(m));
  };
  auto bucket = store->plain_.fs->GetFileInfo(store->options_.bucket);
  if (!bucket.ok()) return fail(bucket.status());
  if (bucket->type() == afs::FileType::NotFound) {
    return arrow::Status::IOError(store->Where(), ": no such bucket");
  }
  auto gen = store->plain_.fs->GetFileInfoGenerator([&] {
    afs::FileSelector select;
    select.base_dir = store->PathOf("");
    select.allow_not_found = true;
    return select;
  }());
  auto first = gen().result();  // the first page is enough
  if (!first.ok()) return fail(first.status());
  return store;
}

arrow::Result<std::vector<const S3BlobStore::Keyed*>> S3BlobStore::Candidates(
    const std::string& key_id) const {
  std::vector<const Keyed*> out;
  if (!key_id.empty()) {
    for (const auto& k : keyed_) {
      if (k.id == key_id) return std::vector<const Keyed*>{&k};
    }
    return arrow::Status::IOError("SSE-C key '", key_id, "' is not in the configured keys of ",
                                  Describe());
  }
  for (const auto& k : keyed_) out.push_back(&k);
  if (!keyed_.front().id.empty()) out.push_back(&plain_);  // blobs written before SSE-C
  return out;
}

arrow::Result<std::unique_ptr<BlobWriter>> S3BlobStore::OpenWriter(const std::string& name) {
  ARROW_RETURN_NOT_OK(ValidateBlobName(name));
  const Keyed& current = keyed_.front();
  auto out = current.fs->OpenOutputStream(PathOf(name), nullptr);
  if (!out.ok()) {
    return redactor_->Clean(arrow::Status::IOError("write blob '", name, "' to ", Where(), ": ",
                                                   out.status().message()));
  }
  return std::make_unique<S3BlobWriter>(name, current.id, *out, redactor_);
}

arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> S3BlobStore::OpenReader(
    const std::string& name, const BlobHint& hint) {
  ARROW_RETURN_NOT_OK(ValidateBlobName(name));
  ARROW_ASSIGN_OR_RAISE(auto candidates, Candidates(hint.key_id));
  const std::string path = PathOf(name);
  // With an unknown size, ask for the first kHeadBytes of a blob "as large as can be": a
  // short answer is the whole blob (one GET, one version of it); only a longer blob needs a
  // LIST for its size. (GetFileInfo(path) would HEAD without the SSE-C headers.)
  const bool size_known = hint.size > 0;
  afs::FileInfo info(path, afs::FileType::File);
  info.set_size(size_known ? hint.size : (int64_t{1} << 60));
  arrow::Status first_error;
  std::string tried;
  for (const Keyed* keyed : candidates) {
    tried += (tried.empty() ? "" : ", ") + (keyed->id.empty() ? std::string("none") : keyed->id);
    auto file = keyed->fs->OpenInputFile(info);  // no request
    arrow::Result<std::shared_ptr<arrow::Buffer>> head =
        file.ok() ? (*file)->ReadAt(0, std::min(info.size(), kHeadBytes))
                  : arrow::Result<std::shared_ptr<arrow::Buffer>>(file.status());
    if (head.ok()) {
      int64_t size = size_known ? hint.size : (*head)->size();
      if (!size_known && size == kHeadBytes) {
        auto listed = ListDir(*plain_.fs, path.substr(0, path.rfind('/')), /*recursive=*/false);
        if (!listed.ok()) {
          return redactor_->Clean(arrow::Status::IOError(
              "find blob '", name, "' in ", Where(), ": ", listed.status().message()));
        }
        size = -1;
        for (const auto& entry : *listed) {
          if (entry.path() == path && entry.IsFile()) size = entry.size();
        }
        if (size < 0) return arrow::Status::KeyError("blob '", name, "' not found");
      }
      auto reader = std::make_shared<S3BlobReader>(name, *file, *head, size, redactor_);
      if (size <= (*head)->size()) return reader;  // read whole already
      const int64_t held = (*head)->size();  // served from memory: no read-ahead for them
      return std::make_shared<ReadaheadFile>(std::move(reader), size, options_.readahead_bytes,
                                             options_.readahead_depth, held);
    }
    if (IsNoSuchKey(head.status())) return arrow::Status::KeyError("blob '", name, "' not found");
    if (!size_known && head.status().message().find("416") != std::string::npos) {
      // An empty blob: any range is out of it.
      return std::make_shared<arrow::io::BufferReader>(std::make_shared<arrow::Buffer>(""));
    }
    if (first_error.ok()) first_error = head.status();
  }
  return redactor_->Clean(arrow::Status::IOError("read blob '", name, "' from ", Where(),
                                                 " (SSE-C keys tried: ", tried,
                                                 "): ", first_error.message()));
}

arrow::Status S3BlobStore::Delete(const std::string& name) {
  ARROW_RETURN_NOT_OK(ValidateBlobName(name));
  const std::string path = PathOf(name);
  // DeleteFile HEADs the object first, without SSE-C headers: replace it by an empty
  // unencrypted object that HEAD accepts.
  arrow::Status st;
  auto out = plain_.fs->OpenOutputStream(path, nullptr);
  st = out.ok() ? (*out)->Close() : out.status();
  if (st.ok()) {
    st = plain_.fs->DeleteFile(path);
    if (!st.ok() && st.message().find("does not exist") != std::string::npos) {
      st = arrow::Status::OK();  // deleted meanwhile by another
    }
  }
  if (st.ok()) return st;
  return redactor_->Clean(arrow::Status::IOError("delete blob '", name, "' from ", Where(), ": ",
                                                 st.message()));
}

arrow::Status S3BlobStore::Move(const std::string& from, const std::string& to) {
  ARROW_RETURN_NOT_OK(ValidateBlobName(from));
  ARROW_RETURN_NOT_OK(ValidateBlobName(to));
  if (from == to) return arrow::Status::OK();
  ARROW_ASSIGN_OR_RAISE(auto candidates, Candidates(""));
  arrow::Status first_error;
  for (const Keyed* keyed : candidates) {
    // CopyObject with this key for the source and the copy: no HEAD.
    auto st = keyed->fs->CopyFile(PathOf(from), PathOf(to));
    if (st.ok()) return Delete(from);
    if (IsNoSuchKey(st)) return arrow::Status::KeyError("blob '", from, "' not found");
    if (first_error.ok()) first_error = st;
  }
  return redactor_->Clean(arrow::Status::IOError("move blob '", from, "' to '", to, "' in ",
                                                 Where(), ": ", first_error.message()));
}

arrow::Result<std::vector<BlobInfo>> S3BlobStore::List(const std::string& prefix) {
  const size_t slash = prefix.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : prefix.substr(0, slash);
  const std::string root = PathOf("");
  auto listed = ListDir(*plain_.fs, dir.empty() ? root : root + "/" + dir, /*recursive=*/true);
  if (!listed.ok()) {
    return redactor_->Clean(arrow::Status::IOError("list '", prefix, "' in ", Where(), ": ",
                                                   listed.status().message()));
  }
  std::vector<BlobInfo> out;
  for (const auto& info : *listed) {
    if (!info.IsFile() || info.path().size() <= root.size() + 1) continue;
    std::string rel = info.path().substr(root.size() + 1);
    if (rel.front() == '.' || rel.compare(0, prefix.size(), prefix) != 0) continue;
    const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           info.mtime().time_since_epoch())
                           .count();
    out.push_back(BlobInfo{std::move(rel), info.size(), ms});
  }
  std::sort(out.begin(), out.end(),
            [](const BlobInfo& a, const BlobInfo& b) { return a.name < b.name; });
  return out;
}

arrow::Result<int64_t> S3BlobStore::RemoveTemporaries(bool /*own*/,
                                                      int64_t /*modified_before_ms*/) {
  return 0;
}

arrow::Result<int64_t> S3BlobStore::RemoveAllTemporaries() { return 0; }
}  // namespace quiver
