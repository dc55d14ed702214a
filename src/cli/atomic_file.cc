#include "cli/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <random>
#include <utility>

#include <arrow/io/file.h>
#include <fmt/format.h>

namespace quiver {

namespace {

namespace fs = std::filesystem;

// The temporary file the signal handler removes: written whole into the buffer, then
// published through the lock-free pointer, so the handler never sees half a name.
char g_temp_buffer[4096];
std::atomic<const char*> g_temp_path{nullptr};
static_assert(std::atomic<const char*>::is_always_lock_free);

// The signals that remove the temporary file, and what they did before: an ignored signal
// stays ignored (nohup, a shell's background job), and RestoreHandlers() puts every
// disposition back as it was.
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
struct sigaction g_previous[std::size(kSignals)];
bool g_handled[std::size(kSignals)];

void RemoveTempAndDie(int sig) {
  if (const char* temp = g_temp_path.load()) ::unlink(temp);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void PublishTemp(const std::string& temp) {
  g_temp_path.store(nullptr);
  std::strncpy(g_temp_buffer, temp.c_str(), sizeof(g_temp_buffer) - 1);
  g_temp_path.store(g_temp_buffer);
}

void InstallHandlers() {
  struct sigaction action {};
  action.sa_handler = RemoveTempAndDie;
  sigemptyset(&action.sa_mask);
  for (size_t i = 0; i < std::size(kSignals); ++i) {
    g_handled[i] = false;
    if (sigaction(kSignals[i], nullptr, &g_previous[i]) != 0) continue;
    if (g_previous[i].sa_handler == SIG_IGN) continue;
    g_handled[i] = sigaction(kSignals[i], &action, nullptr) == 0;
  }
}

void RestoreHandlers() {
  g_temp_path.store(nullptr);
  for (size_t i = 0; i < std::size(kSignals); ++i) {
    if (g_handled[i]) sigaction(kSignals[i], &g_previous[i], nullptr);
    g_handled[i] = false;
  }
}

// The file that `path` names: `path` itself, or the file at the end of its symlinks (the
// output replaces that file and the links stay links).
arrow::Result<fs::path> ResolveTarget(const std::string& path) {
  std::error_code ec;
  if (!fs::is_symlink(path, ec)) return fs::path(path);
  fs::path resolved = fs::canonical(path, ec);
  if (ec) {
    return arrow::Status::IOError("cannot write '", path, "': it is a symlink to a missing file ",
                                  "or one that cannot be resolved (", ec.message(), ")");
  }
  return resolved;
}

// A random name for the temporary file: a predictable one would let another user plant a
// symlink at it.
std::string RandomSuffix() {
  static std::mt19937_64 generator{std::random_device{}()};
  return fmt::format("{:012x}", generator() & 0xFFFFFFFFFFFFull);
}

// Creates the temporary file exclusively (O_EXCL: never through a planted file or link),
// with the mode of the file it replaces, or the umask's for a new file.
arrow::Result<std::pair<std::string, int>> CreateTemp(const fs::path& target) {
  struct stat existing {};
  const bool replaces = ::stat(target.c_str(), &existing) == 0;
  const mode_t mode = replaces ? (existing.st_mode & 0777) : 0666;
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string temp =
        (dir / ("." + target.filename().string() + ".quiver-" + RandomSuffix() + ".tmp"))
            .string();
    if (temp.size() >= sizeof(g_temp_buffer)) {
      return arrow::Status::Invalid("output path too long: '", temp, "'");
    }
    PublishTemp(temp);  // before it exists: a signal right after open() removes it
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
      int err = errno;
      g_temp_path.store(nullptr);  // not ours to remove
      if (err == EEXIST) continue;
      return arrow::Status::IOError(std::strerror(err));
    }
    // The umask applies to open(), not to fchmod(): a replaced file keeps its exact mode.
    if (replaces && ::fchmod(fd, mode) != 0) {
      int err = errno;
      ::close(fd);
      ::unlink(temp.c_str());
      return arrow::Status::IOError("cannot set the mode of '", temp, "': ", std::strerror(err));
    }
    return std::make_pair(std::move(temp), fd);
  }
  return arrow::Status::IOError("no free temporary name in '", dir.string(), "'");
}

}  // namespace

AtomicFile::AtomicFile(std::string path, std::string temp,
                       std::shared_ptr<arrow::io::OutputStream> out)
    : path_(std::move(path)), temp_(std::move(temp)), stream_(std::move(out)) {}

arrow::Status AtomicFile::CheckTarget(const std::string& path) {
  if (path.size() >= sizeof(g_temp_buffer) - 64) {
    return arrow::Status::Invalid("output path too long: '", path, "'");
  }
  const fs::path target(path);
  std::error_code ec;
  if (fs::is_directory(target, ec)) {
    return arrow::Status::IOError("'", path, "' is a directory; give a file name");
  }
  ARROW_RETURN_NOT_OK(ResolveTarget(path));
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec)) {
    return arrow::Status::IOError("cannot write '", path, "': no directory '", dir.string(),
                                  "'");
  }
  return arrow::Status::OK();
}

arrow::Result<std::unique_ptr<AtomicFile>> AtomicFile::Create(const std::string& path) {
  ARROW_RETURN_NOT_OK(CheckTarget(path));
  ARROW_ASSIGN_OR_RAISE(const fs::path target, ResolveTarget(path));
  InstallHandlers();
  auto temp = CreateTemp(target);
  if (!temp.ok()) {
    RestoreHandlers();
    return arrow::Status::IOError("cannot write '", path, "': ", temp.status().message());
  }
  auto& [temp_path, fd] = *temp;
  auto out = arrow::io::FileOutputStream::Open(fd);
  if (!out.ok()) {
    ::close(fd);
    ::unlink(temp_path.c_str());
    RestoreHandlers();
    return arrow::Status::IOError("cannot write '", path, "': ", out.status().message());
  }
  return std::unique_ptr<AtomicFile>(
      new AtomicFile(target.string(), std::move(temp_path), std::move(*out)));
}

AtomicFile::~AtomicFile() {
  if (!committed_) {
    (void)stream_->Close();
    ::unlink(temp_.c_str());
  }
  RestoreHandlers();
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
