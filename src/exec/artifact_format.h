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

#include <arrow/io/interfaces.h>
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

/// \brief Read the whole open `file` (exec/artifact_file.h) as a table in `format`.
/// Any failure to decode it (a corrupt file, a format that does not match, a read that
/// failed) is Invalid, saying which format was tried. Stops early (Cancelled) where the
/// reader checks `stop`.
arrow::Result<std::shared_ptr<arrow::Table>> ReadArtifact(
    std::shared_ptr<arrow::io::RandomAccessFile> file, ArtifactFormat format,
    const arrow::StopToken& stop);

}  // namespace quiver
