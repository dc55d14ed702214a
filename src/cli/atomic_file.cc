#include "cli/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <arrow/io/file.h>

namespace quiver {

namespace {

namespace fs = std::filesystem;

// The temporary file the signal handler removes (async-signal-safe: unlink only).
char g_temp_path[4096];

void RemoveTempAndDie(int sig) {
  if (g_temp_path[0] != '\0') ::unlink(g_temp_path);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void Register(const std::string& temp) {
  std::strncpy(g_temp_path, temp.c_str(), sizeof(g_temp_path) - 1);
  struct sigaction action {};
  action.sa_handler = RemoveTempAndDie;
  sigemptyset(&action.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &action, nullptr);
}

void Unregister() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_DFL);
  g_temp_path[0] = '\0';
}

}  // namespace

AtomicFile::AtomicFile(std::string path, std::string temp,
                       std::shared_ptr<arrow::io::OutputStream> out)
    : path_(std::move(path)), temp_(std::move(temp)), stream_(std::move(out)) {}

arrow::Status AtomicFile::CheckTarget(const std::string& path) {
  if (path.size() >= sizeof(g_temp_path) - 64) {
    return arrow::Status::Invalid("output path too long: '", path, "'");
  }
  const fs::path target(path);
  std::error_code ec;
  if (fs::is_directory(target, ec)) {
    return arrow::Status::IOError("'", path, "' is a directory; give a file name");
  }
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec)) {
    return arrow::Status::IOError("cannot write '", path, "': no directory '", dir.string(),
                                  "'");
  }
  return arrow::Status::OK();
}

arrow::Result<std::unique_ptr<AtomicFile>> AtomicFile::Create(const std::string& path) {
  ARROW_RETURN_NOT_OK(CheckTarget(path));
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string temp =
      (dir / ("." + target.filename().string() + ".quiver-" + std::to_string(::getpid()) +
              ".tmp"))
          .string();
  Register(temp);
  auto out = arrow::io::FileOutputStream::Open(temp);
  if (!out.ok()) {
    Unregister();
    return arrow::Status::IOError("cannot write '", path, "': ", out.status().message());
  }
  return std::unique_ptr<AtomicFile>(new AtomicFile(path, temp, std::move(*out)));
}

AtomicFile::~AtomicFile() {
  if (!committed_) {
    (void)stream_->Close();
    ::unlink(temp_.c_str());
  }
  Unregister();
}

arrow::Status AtomicFile::Commit() {
  if (!stream_->closed()) ARROW_RETURN_NOT_OK(stream_->Close());
  // Renamed data must be on disk first, or a crash could leave an empty file by the name.
  int fd = ::open(temp_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    int err = errno;
    if (fd >= 0) ::close(fd);
    return arrow::Status::IOError("cannot flush '", temp_, "': ", std::strerror(err));
  }
  ::close(fd);
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    return arrow::Status::IOError("cannot rename '", temp_, "' to '", path_,
                                  "': ", std::strerror(errno));
  }
  committed_ = true;
  return arrow::Status::OK();
}

}  // namespace quiver
