// Artifact formats: which Arrow reader turns a file into a table.
//
//   parquet     .parquet .pq               parquet::arrow::FileReader, a row group at a time
//   feather     .feather .arrow .ipc       Arrow IPC file format (Feather v2), a batch at a time
//   ipc_stream  .arrows                    Arrow IPC stream format
//   csv         .csv                       arrow::csv::StreamingReader (header row; types
//                                          inferred from the first block, 1 MiB)
//   json        .json .jsonl .ndjson       arrow::json::StreamingReader (one object per line;
//                                          types inferred from the first block, 1 MiB)
//
// Readers run single-threaded: a fetch occupies one worker of the artifact pool, no more.
// They read batch by batch, so that a file too large to cache is refused once what was read
// passes the limit, not after it was all decoded in memory.
//
// Thread-safety: stateless functions.
#pragma once

#include <cstdint>
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

/// \brief Read the open `file` (exec/artifact_file.h) as a table in `format`, batch by
/// batch, keeping no more than `max_bytes` of data (the IPC size of the batches read): past
/// that it stops at once with ArtifactTooLarge. Any failure to decode it (a corrupt file, a
/// format that does not match, a read that failed) is Invalid, saying which format was tried.
/// Stops early (Cancelled) once `stop` is requested.
arrow::Result<std::shared_ptr<arrow::Table>> ReadArtifact(
    std::shared_ptr<arrow::io::RandomAccessFile> file, ArtifactFormat format,
    const arrow::StopToken& stop, int64_t max_bytes);

/// \brief A too-large rejection (common/rejection.h) of the setting max_entry_bytes:
/// CapacityError "too large: WHAT, more than max_entry_bytes (MAX_BYTES)".
arrow::Status ArtifactTooLarge(const std::string& what, int64_t max_bytes);

}  // namespace quiver
