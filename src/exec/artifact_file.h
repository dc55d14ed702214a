// ArtifactFile: an artifact's file, opened for reading such that what is read is what was
// checked against artifacts.allowed_prefixes (exec/artifact_source.h).
//
// A URL is checked when a request is planned, but its file is opened later, on a worker of
// the fetch pool. Whatever happens to the path in between -- the file replaced by a symlink
// to a secret, a directory of the path swapped for one elsewhere, a pipe put in its place --
// must not make the server read anything else. So a local file is opened once, without
// following a symlink in its last component and without blocking (O_NOFOLLOW | O_NONBLOCK),
// the opened descriptor must be a regular file whose path (as the kernel reports it, through
// /proc/self/fd) is still the checked one, and the readers get that descriptor: nothing is
// resolved by path again. Only regular files are read: a pipe, socket or device would block
// a worker or never end.
//
// Thread-safety: stateless functions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <arrow/filesystem/filesystem.h>
#include <arrow/io/interfaces.h>
#include <arrow/result.h>

namespace quiver {

struct ArtifactFile {
  std::shared_ptr<arrow::io::RandomAccessFile> file;
  int64_t size = 0;      ///< bytes, of the opened file
  int64_t mtime_ms = 0;  ///< modification time of the opened file
  std::string etag;      ///< the filesystem's ETag ("" if it reports none, as local files)
};

/// \brief Open the local file at `path`, a resolved absolute path that was checked.
/// KeyError if it does not exist; Invalid if it is not a regular file, or if what the path
/// names now is not what was checked (a symlink, or a path that resolves elsewhere).
arrow::Result<ArtifactFile> OpenLocalArtifact(const std::string& path);

/// \brief Open `path` of `fs` (S3 and other non-local filesystems): KeyError if it does not
/// exist, Invalid if it is not a file.
arrow::Result<ArtifactFile> OpenArtifact(arrow::fs::FileSystem* fs, const std::string& path);

}  // namespace quiver
