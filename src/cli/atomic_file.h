// AtomicFile: an output file that appears whole or not at all. It is written under a
// temporary name beside the target (".NAME.quiver-RANDOM.tmp", created with O_EXCL so that
// no planted file or link is written through), flushed to disk, and renamed over the target
// on Commit(). An existing target keeps its permission bits (a new one gets 0666 less the
// umask); a target that is a symlink is written through: the file it resolves to is
// replaced and the link stays. Without Commit() — an error, an exception — the temporary
// file is removed and an existing target is left untouched; SIGINT, SIGTERM and SIGHUP
// remove it too before the process dies of the signal, unless the signal was ignored when
// the file was created (nohup): an ignored signal stays ignored, and every disposition is
// restored afterwards.
//
// Thread-safety: one AtomicFile at a time per process (the signal handler knows one path).
#pragma once

#include <memory>
#include <string>

#include <arrow/io/interfaces.h>
#include <arrow/result.h>

namespace quiver {

class AtomicFile {
 public:
  /// \brief Start writing `path`: checks that its directory exists and that `path` is not
  /// a directory (nor a dangling symlink), then creates the temporary file.
  static arrow::Result<std::unique_ptr<AtomicFile>> Create(const std::string& path);
  /// \brief The checks of Create() without creating anything: the directory exists and
  /// `path` is not a directory.
  static arrow::Status CheckTarget(const std::string& path);
  ~AtomicFile();

  /// The stream to write; the caller closes it before Commit().
  const std::shared_ptr<arrow::io::OutputStream>& stream() const { return stream_; }
  /// \brief Flush the temporary file to disk and rename it to the target.
  arrow::Status Commit();

 private:
  AtomicFile(std::string path, std::string temp, std::shared_ptr<arrow::io::OutputStream> out);

  std::string path_;
  std::string temp_;
  std::shared_ptr<arrow::io::OutputStream> stream_;
  bool committed_ = false;
};

}  // namespace quiver
