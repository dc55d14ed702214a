#include "storage/local_blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>

#include <arrow/io/file.h>
#include <fmt/format.h>

namespace quiver {

namespace fs = std::filesystem;

namespace {

arrow::Status ErrnoStatus(int err, const std::string& what) {
  if (err == ENOSPC || err == EDQUOT) {
    return arrow::Status::IOError(what, ": no space left on device");
  }
  return arrow::Status::IOError(what, ": ", std::strerror(err));
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

// mkdir -p that fsyncs the parent of every directory it creates, so a committed blob's
// path survives a crash.
arrow::Status MakeDirs(const fs::path& dir) {
  if (fs::is_directory(dir)) return arrow::Status::OK();
  ARROW_RETURN_NOT_OK(MakeDirs(dir.parent_path()));
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "create directory " + dir.string());
  }
  return FsyncPath(dir.parent_path().string());
}

std::string RandomSuffix() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{:016x}", rng());
}

class LocalBlobWriter final : public BlobWriter {
 public:
  static constexpr size_t kBufferSize = 1 << 20;

  LocalBlobWriter(std::string name, std::string final_path, std::string temp_path, int fd,
                  std::shared_ptr<std::shared_mutex> dirs)
      : BlobWriter(std::move(name)),
        final_path_(std::move(final_path)),
        temp_path_(std::move(temp_path)),
        fd_(fd),
        dirs_(std::move(dirs)) {
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
    if (::fsync(fd_) != 0) return ErrnoStatus(errno, "fsync blob '" + name_ + "'");
    if (::close(fd_) != 0) {
      fd_ = -1;
      return ErrnoStatus(errno, "close blob '" + name_ + "'");
    }
    fd_ = -1;
    fs::path final_path(final_path_);
    std::shared_lock<std::shared_mutex> dirs(*dirs_);
    ARROW_RETURN_NOT_OK(MakeDirs(final_path.parent_path()));
    if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
      return ErrnoStatus(errno, "rename blob '" + name_ + "' into place");
    }
    done_ = true;
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
  std::vector<uint8_t> buffer_;
  int64_t position_ = 0;
  bool done_ = false;
};

}  // namespace

arrow::Result<std::shared_ptr<LocalBlobStore>> LocalBlobStore::Open(const std::string& root) {
  std::error_code ec;
  auto absolute = fs::absolute(root, ec);
  if (ec) return arrow::Status::IOError("data dir '", root, "': ", ec.message());
  std::shared_ptr<LocalBlobStore> store(new LocalBlobStore(absolute.lexically_normal().string()));
  if (!store->root_.empty() && store->root_.back() == '/') store->root_.pop_back();
  ARROW_RETURN_NOT_OK(MakeDirs(store->temp_dir()));
  if (::access(store->temp_dir().c_str(), W_OK) != 0) {
    return ErrnoStatus(errno, "data dir '" + store->root_ + "' is not writable");
  }
  return store;
}

arrow::Result<std::unique_ptr<BlobWriter>> LocalBlobStore::OpenWriter(const std::string& name) {
  ARROW_RETURN_NOT_OK(ValidateBlobName(name));
  std::string temp = fmt::format("{}/{}-{}.part", temp_dir(), next_temp_++, RandomSuffix());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "create temporary file for blob '" + name + "'");
  return std::make_unique<LocalBlobWriter>(name, PathOf(name), temp, fd, dirs_);
}

arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> LocalBlobStore::OpenReader(
    const std::string& name) {
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
  std::shared_lock<std::shared_mutex> dirs(*dirs_);
  ARROW_RETURN_NOT_OK(MakeDirs(target.parent_path()));
  if (::rename(PathOf(from).c_str(), target.c_str()) != 0) {
    if (errno == ENOENT) return arrow::Status::KeyError("blob '", from, "' not found");
    return ErrnoStatus(errno, "move blob '" + from + "' to '" + to + "'");
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
    out.push_back(BlobInfo{rel, static_cast<int64_t>(entry.file_size(ec))});
  }
  std::sort(out.begin(), out.end(),
            [](const BlobInfo& a, const BlobInfo& b) { return a.name < b.name; });
  return out;
}

arrow::Result<int64_t> LocalBlobStore::RemoveTemporaries() {
  int64_t removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(temp_dir(), ec)) {
    if (fs::remove(entry.path(), ec)) ++removed;
  }
  if (ec) return arrow::Status::IOError("clean '", temp_dir(), "': ", ec.message());
  return removed;
}

}  // namespace quiver
