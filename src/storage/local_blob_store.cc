#include "storage/local_blob_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

#include <arrow/io/file.h>
#include <fmt/format.h>

#include "common/hex.h"

namespace quiver {

namespace fs = std::filesystem;

namespace {

arrow::Status ErrnoStatus(int err, const std::string& what) {
  if (err == ENOSPC || err == EDQUOT) {
    return arrow::Status::IOError(what, ": no space left on device");
  }
  return arrow::Status::IOError(what, ": ", std::strerror(err));
}

int64_t ModifiedMs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
}

arrow::Status FsyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY);
  if (fd < 0) return ErrnoStatus(errno, "open directory " + path);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus(err, "fsync directory " + path);
  return arrow::Status::OK();
}

// mkdir -p that fsyncs the parent of every directory it creates (unless `sync` is false: a
// Syncer flushes later), so a committed blob's path survives a crash. Returns 0 or the
// errno of the step named in *failed.
int MakeDirsOnce(const fs::path& dir, bool sync, std::string* failed) {
  if (fs::is_directory(dir)) return 0;
  if (int err = MakeDirsOnce(dir.parent_path(), sync, failed)) return err;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    *failed = "create directory " + dir.string();
    return errno;
  }
  if (!sync) return 0;
  const std::string parent = dir.parent_path().string();
  int fd = ::open(parent.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY);
  int err = fd < 0 ? errno : (::fsync(fd) != 0 ? errno : 0);
  if (fd >= 0) ::close(fd);
  if (err) *failed = "fsync directory " + parent;
  return err;
}

// Another process sharing the directory may prune an emptied parent between our mkdir of
// it and of its child; then start again.
arrow::Status MakeDirs(const fs::path& dir, bool sync = true) {
  for (int attempt = 0;; ++attempt) {
    std::string failed;
    int err = MakeDirsOnce(dir, sync, &failed);
    if (err == 0) return arrow::Status::OK();
    if (err != ENOENT || attempt == 16) return ErrnoStatus(err, failed);
  }
}

// mkdir -p, then rename. Another process sharing the directory may prune the new directory
// between the two (it deleted the last blob there); then make it again.
arrow::Status RenameIntoPlace(const std::string& from, const fs::path& to,
                              const std::string& what, bool sync) {
  for (int attempt = 0;; ++attempt) {
    ARROW_RETURN_NOT_OK(MakeDirs(to.parent_path(), sync));
    if (::rename(from.c_str(), to.c_str()) == 0) return arrow::Status::OK();
    if (errno != ENOENT || attempt == 8 || ::access(from.c_str(), F_OK) != 0) {
      return ErrnoStatus(errno, "rename " + what + " into place");
    }
  }
}

class LocalBlobWriter final : public BlobWriter {
 public:
  static constexpr size_t kBufferSize = 1 << 20;

  LocalBlobWriter(std::string name, std::string final_path, std::string temp_path, int fd,
                  std::shared_ptr<std::shared_mutex> dirs, std::shared_ptr<Syncer> syncer)
      : BlobWriter(std::move(name)),
        final_path_(std::move(final_path)),
        temp_path_(std::move(temp_path)),
        fd_(fd),
        dirs_(std::move(dirs)),
        syncer_(std::move(syncer)) {
    buffer_.reserve(kBufferSize);
  }
  ~LocalBlobWriter() override { (void)Abort(); }

  arrow::Status Write(const void* data, int64_t nbytes) override {
    if (done_) return arrow::Status::Invalid("blob '", name_, "' is already committed or aborted");
    const auto* bytes = static_cast<const uint8_t*>(data);
    if (buffer_.size() + nbytes > kBufferSize) {
      ARROW_RETURN_NOT_OK(FlushBuffer());
    }
    if (static_cast<size_t>(nbytes) >= kBufferSize) {
      ARROW_RETURN_NOT_OK(WriteFully(bytes, static_cast<size_t>(nbytes)));
    } else {
      buffer_.insert(buffer_.end(), bytes, bytes + nbytes);
    }
    position_ += nbytes;
    return arrow::Status::OK();
  }

  arrow::Status Flush() override { return FlushBuffer(); }
  bool closed() const override { return done_; }
  std::string local_path() const override { return done_ ? "" : temp_path_; }
  arrow::Result<int64_t> Tell() const override { return position_; }

  arrow::Status Commit() override {
    if (done_) return arrow::Status::Invalid("blob '", name_, "' is already committed or aborted");
    auto st = CommitImpl();
    if (!st.ok()) (void)Abort();
    return st;
  }

  arrow::Status Abort() override {
    if (done_) return arrow::Status::OK();
    done_ = true;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    ::unlink(temp_path_.c_str());
    return arrow::Status::OK();
  }

 private:
  arrow::Status CommitImpl() {
    ARROW_RETURN_NOT_OK(FlushBuffer());
    // With a Syncer the bytes only need to reach the page cache now: it flushes them.
    if (!syncer_ && ::fsync(fd_) != 0) return ErrnoStatus(errno, "fsync blob '" + name_ + "'");
    if (::close(fd_) != 0) {
      fd_ = -1;
      return ErrnoStatus(errno, "close blob '" + name_ + "'");
    }
    fd_ = -1;
    fs::path final_path(final_path_);
    std::shared_lock<std::shared_mutex> dirs(*dirs_);
    ARROW_RETURN_NOT_OK(
        RenameIntoPlace(temp_path_, final_path, "blob '" + name_ + "'", !syncer_));
    done_ = true;
    if (syncer_) {
      syncer_->Dirty();
      return arrow::Status::OK();
    }
    return FsyncPath(final_path.parent_path().string());
  }

  arrow::Status FlushBuffer() {
    if (buffer_.empty()) return arrow::Status::OK();
    auto st = WriteFully(buffer_.data(), buffer_.size());
    buffer_.clear();
    return st;
  }

  arrow::Status WriteFully(const uint8_t* data, size_t size) {
    while (size > 0) {
      ssize_t n = ::write(fd_, data, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, "write blob '" + name_ + "'");
      }
      data += n;
      size -= static_cast<size_t>(n);
    }
    return arrow::Status::OK();
  }

  std::string final_path_;
  std::string temp_path_;
  int fd_;
  std::shared_ptr<std::shared_mutex> dirs_;
  std::shared_ptr<Syncer> syncer_;
  std::vector<uint8_t> buffer_;
  int64_t position_ = 0;
  bool done_ = false;
};

}  // namespace

arrow::Result<std::shared_ptr<LocalBlobStore>> LocalBlobStore::Open(const std::string& root,
                                                                   const std::string& writer) {
  std::error_code ec;
  auto absolute = fs::absolute(root, ec);
  if (ec) return arrow::Status::IOError("data dir '", root, "': ", ec.message());
  std::shared_ptr<LocalBlobStore> store(
      new LocalBlobStore(absolute.lexically_normal().string(), writer.empty() ? "w" : writer));
  if (!store->root_.empty() && store->root_.back() == '/') store->root_.pop_back();
  ARROW_RETURN_NOT_OK(MakeDirs(store->temp_dir()));
  if (::access(store->temp_dir().c_str(), W_OK) != 0) {
    return ErrnoStatus(errno, "data dir '" + store->root_ + "' is not writable");
  }
  return store;
}

LocalBlobStore::~LocalBlobStore() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

arrow::Status LocalBlobStore::Lock(bool exclusive) {
  const std::string path = root_ + "/.lock";
  if (lock_fd_ < 0) {
    lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) return ErrnoStatus(errno, "open " + path);
  }
  if (::flock(lock_fd_, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0) return arrow::Status::OK();
  if (errno != EWOULDBLOCK) return ErrnoStatus(errno, "lock " + path);
  return arrow::Status::IOError(
      "data dir '", root_, "' is in use by another quiver process",
      exclusive ? "" : " that owns it alone (an embedded index)",
      exclusive ? " (one embedded server per data dir; nodes sharing a data dir need a shared "
                  "index, --index redis://...)"
                : "");
}

arrow::Result<std::unique_ptr<BlobWriter>> LocalBlobStore::OpenWriter(const std::string& name) {
  ARROW_RETURN_NOT_OK(ValidateBlobName(name));
  std::string temp =
      fmt::format("{}/{}~{}-{}.part", temp_dir(), writer_, next_temp_++, RandomHex(8));
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "create temporary file for blob '" + name + "'");
  return std::make_unique<LocalBlobWriter>(name, PathOf(name), temp, fd, dirs_, syncer_);
}

arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> LocalBlobStore::OpenReader(
    const std::string& name, const BlobHint& /*hint*/) {
  ARROW_RETURN_NOT_OK(ValidateBlobName(name));
  std::string path = PathOf(name);
  auto file = arrow::io::MemoryMappedFile::Open(path, arrow::io::FileMode::READ);
  if (file.ok()) return *file;
  // Arrow's error does not say ENOENT in a form callers can test; a blob deleted just now
  // (trimmed, evicted) must read as missing, so that readers retry on the newer state.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) {
    return arrow::Status::KeyError("blob '", name, "' not found");
  }
  return file.status();
}

arrow::Status LocalBlobStore::Delete(const std::string& name) {
  ARROW_RETURN_NOT_OK(ValidateBlobName(name));
  fs::path path = PathOf(name);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, "delete blob '" + name + "'");
  }
  // Remove directories the deletion emptied, up to (not including) the root (a directory
  // gone already was pruned by another delete)...
  auto dir = path.parent_path();
  auto above_root = [&] { return dir.string().size() > root_.size(); };
  {
    std::unique_lock<std::shared_mutex> dirs(*dirs_);
    while (above_root() && (::rmdir(dir.c_str()) == 0 || errno == ENOENT)) {
      dir = dir.parent_path();
    }
  }
  if (syncer_) {  // it flushes the removal
    syncer_->Dirty();
    return arrow::Status::OK();
  }
  // ...then make the removal durable in the deepest directory left. If another delete
  // prunes that one meanwhile, it makes its own removal durable higher up.
  while (true) {
    auto st = FsyncPath(dir.string());
    if (st.ok() || !above_root() || ::access(dir.c_str(), F_OK) == 0) return st;
    dir = dir.parent_path();
  }
}

arrow::Status LocalBlobStore::Move(const std::string& from, const std::string& to) {
  ARROW_RETURN_NOT_OK(ValidateBlobName(from));
  ARROW_RETURN_NOT_OK(ValidateBlobName(to));
  fs::path target(PathOf(to));
  const std::string source = PathOf(from);
  std::shared_lock<std::shared_mutex> dirs(*dirs_);
  if (::access(source.c_str(), F_OK) != 0) {
    return arrow::Status::KeyError("blob '", from, "' not found");
  }
  auto moved = RenameIntoPlace(source, target, "blob '" + from + "' as '" + to + "'", !syncer_);
  if (!moved.ok() && ::access(source.c_str(), F_OK) != 0) {
    return arrow::Status::KeyError("blob '", from, "' not found");
  }
  ARROW_RETURN_NOT_OK(moved);
  if (syncer_) {
    syncer_->Dirty();
    return arrow::Status::OK();
  }
  return FsyncPath(target.parent_path().string());
}

arrow::Result<std::vector<BlobInfo>> LocalBlobStore::List(const std::string& prefix) {
  std::vector<BlobInfo> out;
  // Walk only the deepest directory the prefix names completely.
  std::string dir_part = prefix.substr(0, prefix.rfind('/') == std::string::npos
                                              ? 0
                                              : prefix.rfind('/') + 1);
  fs::path start = dir_part.empty() ? fs::path(root_) : fs::path(PathOf(dir_part));
  std::error_code ec;
  if (!fs::is_directory(start, ec)) return out;
  fs::recursive_directory_iterator it(start, fs::directory_options::skip_permission_denied, ec);
  if (ec) return arrow::Status::IOError("list '", start.string(), "': ", ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return arrow::Status::IOError("list '", start.string(), "': ", ec.message());
    const auto& entry = *it;
    std::string rel = entry.path().string().substr(root_.size() + 1);
    if (rel.front() == '.') {
      if (entry.is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (!entry.is_regular_file(ec)) continue;
    if (rel.compare(0, prefix.size(), prefix) != 0) continue;
    struct stat st;
    if (::stat(entry.path().c_str(), &st) != 0) continue;  // deleted meanwhile
    out.push_back(BlobInfo{rel, static_cast<int64_t>(st.st_size), ModifiedMs(st)});
  }
  std::sort(out.begin(), out.end(),
            [](const BlobInfo& a, const BlobInfo& b) { return a.name < b.name; });
  return out;
}

arrow::Result<int64_t> LocalBlobStore::RemoveTemporaries(bool own, int64_t modified_before_ms) {
  const std::string mine = writer_ + "~";  // '~' never occurs in a writer tag
  return RemoveTemporariesIf([&](const std::string& name, const struct stat& st) {
    return (own && name.compare(0, mine.size(), mine) == 0) ||
           (modified_before_ms > 0 && ModifiedMs(st) < modified_before_ms);
  });
}

arrow::Result<int64_t> LocalBlobStore::RemoveAllTemporaries() {
  return RemoveTemporariesIf([](const std::string&, const struct stat&) { return true; });
}

arrow::Result<int64_t> LocalBlobStore::RemoveTemporariesIf(
    const std::function<bool(const std::string&, const struct stat&)>& match) {
  int64_t removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(temp_dir(), ec)) {
    struct stat st;
    if (::stat(entry.path().c_str(), &st) != 0) continue;  // gone meanwhile
    if (match(entry.path().filename().string(), st) && ::unlink(entry.path().c_str()) == 0) {
      ++removed;
    }
  }
  if (ec) return arrow::Status::IOError("clean '", temp_dir(), "': ", ec.message());
  return removed;
}

}  // namespace quiver
