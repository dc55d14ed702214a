// Artifact formats: which Arrow reader turns a file into a table.
//
//   parquet     .parquet .pq               parquet::arrow::FileReader
//   feather     .feather .arrow .ipc       Arrow IPC file format (Feather v2)
//   ipc_stream  .arrows                    Arrow IPC stream format
//   csv         .csv                       arrow::csv::TableReader (header row, inferred types)
//   json        .json .jsonl .ndjson       arrow::json::TableReader (one object per line)
//
// Readers run single-threaded: a fetch occupies one worker of the artifact pool, no more.
//
// Thread-safety: stateless functions.
#pragma once

#include <memory>
#include <string>

#include <arrow/filesystem/filesystem.h>
#include <arrow/result.h>
#include <arrow/table.h>
#include <arrow/util/cancel.h>

namespace quiver {

enum class ArtifactFormat { kParquet, kFeather, kIpcStream, kCsv, kJson };

/// \brief The format's name ("parquet", "feather", ...).
const char* ArtifactFormatName(ArtifactFormat format);

/// \brief The format named `name`; Invalid listing the known names otherwise.
arrow::Result<ArtifactFormat> ArtifactFormatFromName(const std::string& name);

/// \brief The format a path's extension says; Invalid (naming the path) if it says none.
arrow::Result<ArtifactFormat> ArtifactFormatFromPath(const std::string& path);

/// \brief Read the whole file `info` of `fs` as a table in `format`.
/// Any failure to open or decode it (a corrupt file, a format that does not match, a read
/// that failed) is Invalid, saying which format was tried. Stops early (Cancelled) where
/// the reader checks `stop`. `*etag`: the ETag the filesystem reports ("" if none).
arrow::Result<std::shared_ptr<arrow::Table>> ReadArtifact(arrow::fs::FileSystem* fs,
                                                          const arrow::fs::FileInfo& info,
                                                          ArtifactFormat format,
                                                          const arrow::StopToken& stop,
                                                          std::string* etag);

}  // namespace quiver
