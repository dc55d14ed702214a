#include "exec/artifact_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include <arrow/io/file.h>
#include <arrow/util/key_value_metadata.h>

namespace quiver {

namespace {

// Closes a descriptor unless it was handed on.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

arrow::Status NotRegular(arrow::fs::FileType type) {
  if (type == arrow::fs::FileType::Directory) {
    return arrow::Status::Invalid("it is a directory, not a file");
  }
  return arrow::Status::Invalid("it is not a regular file (a pipe, socket or device?)");
}

}  // namespace

arrow::Result<ArtifactFile> OpenLocalArtifact(const std::string& path) {
  // O_NONBLOCK: opening a pipe must not wait for a writer (it is refused just below).
  FdGuard fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) return arrow::Status::KeyError("not found");
    if (error == ELOOP) {
      return arrow::Status::Invalid("it is a symbolic link now; it was not when it was checked");
    }
    return arrow::Status::IOError("cannot open it: ", std::strerror(error));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return arrow::Status::IOError("cannot stat it: ", std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) return NotRegular(arrow::fs::FileType::Directory);
  if (!S_ISREG(st.st_mode)) return NotRegular(arrow::fs::FileType::Unknown);
  // The directories of the path may have changed since it was checked (O_NOFOLLOW covers
  // only its last component): the kernel's name for the open file must be the checked one.
  std::error_code ec;
  const auto opened =
      std::filesystem::read_symlink("/proc/self/fd/" + std::to_string(fd.get()), ec);
  if (ec) return arrow::Status::IOError("cannot tell which file was opened: ", ec.message());
  if (opened.string() != path) {
    return arrow::Status::Invalid(
        "it resolves to another file than the one that was checked (the path changed)");
  }
  ArtifactFile out;
  out.size = static_cast<int64_t>(st.st_size);
  out.mtime_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
  ARROW_ASSIGN_OR_RAISE(out.file, arrow::io::ReadableFile::Open(fd.get()));
  fd.release();  // the ReadableFile owns it now
  return out;
}

arrow::Result<ArtifactFile> OpenArtifact(arrow::fs::FileSystem* fs, const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(auto info, fs->GetFileInfo(path));
  if (info.type() == arrow::fs::FileType::NotFound) return arrow::Status::KeyError("not found");
  if (info.type() != arrow::fs::FileType::File) return NotRegular(info.type());
  ArtifactFile out;
  // Opened by path, not FileInfo: S3 then sends the HEAD whose answer holds the ETag.
  ARROW_ASSIGN_OR_RAISE(out.file, fs->OpenInputFile(path));
  auto metadata = out.file->ReadMetadata();
  if (metadata.ok() && *metadata) {
    auto etag = (*metadata)->Get("ETag");
    if (etag.ok()) out.etag = *etag;
  }
  out.size = info.size();
  out.mtime_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(info.mtime().time_since_epoch())
          .count();
  return out;
}

}  // namespace quiver
