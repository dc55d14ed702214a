// File formats of `quiver put` and `quiver get -o`: Parquet, Arrow IPC (the file format,
// which Feather v2 is, and the stream format) and CSV, read and written with Arrow C++'s
// own readers and writers, batch by batch.
//
// Thread-safety: free functions; the readers and writers they return are single-threaded.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <arrow/io/interfaces.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>

namespace quiver {

enum class FileFormat {
  kParquet,
  kArrowFile,    // Arrow IPC file format = Feather v2 (.arrow, .feather, .ipc)
  kArrowStream,  // Arrow IPC stream format (.arrows)
  kCsv,
};

/// \brief The format named `name`: parquet, arrow, feather, ipc, arrows (stream) or csv.
arrow::Result<FileFormat> ParseFormatName(const std::string& name);
/// \brief The format of `path` by its extension; the error names the path and the choices.
arrow::Result<FileFormat> FormatFromExtension(const std::string& path);
/// \brief The format's name as --format takes it.
const char* FormatName(FileFormat format);

/// An input file opened for streaming.
struct InputFile {
  std::shared_ptr<arrow::RecordBatchReader> reader;
  FileFormat format;                  // as read (an .arrow file may hold a stream)
  std::optional<int64_t> total_rows;  // when the file says so (Parquet metadata, IPC file)
  int64_t file_bytes = 0;
};

/// \brief Open `path` for reading in `format` (default: by extension). Arrow IPC input is
/// told apart by its magic bytes: file format ("ARROW1") or stream format.
/// A CSV file's column types are inferred from its first block (1 MiB).
arrow::Result<InputFile> OpenInputFile(const std::string& path,
                                       std::optional<FileFormat> format);

/// Writes batches of one schema to an output stream in a file format.
class BatchFileWriter {
 public:
  virtual ~BatchFileWriter() = default;
  virtual arrow::Status Write(const arrow::RecordBatch& batch) = 0;
  /// \brief Write the footer (Parquet, IPC file) and close the stream.
  virtual arrow::Status Close() = 0;
};

/// \brief A writer of `format` over `sink`. Parquet files keep the Arrow schema (so types
/// such as timestamps with a time zone read back unchanged).
arrow::Result<std::unique_ptr<BatchFileWriter>> MakeBatchFileWriter(
    FileFormat format, const std::shared_ptr<arrow::Schema>& schema,
    std::shared_ptr<arrow::io::OutputStream> sink);

}  // namespace quiver
