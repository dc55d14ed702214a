// Where `quiver get` and `quiver query` send a result: a preview on stdout, or a file in
// a format, written atomically.
//
// Thread-safety: free functions.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <arrow/result.h>
#include <arrow/table.h>
#include <nlohmann/json.hpp>

#include "cli/file_formats.h"

namespace quiver {

/// The output options of get and query.
struct OutputFlags {
  std::string path;         // -o FILE; empty: a preview on stdout
  std::string format_name;  // --format; empty: by the extension of -o
};

/// \brief The output format: --format, else the extension of -o; none for a preview.
/// The error names the problem (an unknown format, --format without -o).
arrow::Result<std::optional<FileFormat>> ResolveOutputFormat(const OutputFlags& flags);

/// \brief Drain `reader` into `flags.path` in `format` (atomically: a failure leaves no
/// file, no temporary file, and an existing file untouched) and return null; or, without
/// a path, return its first rows for a preview. If reading failed, `*read_error` is the
/// reader's status (and the result); otherwise writing the file failed.
arrow::Result<std::shared_ptr<arrow::Table>> Deliver(arrow::RecordBatchReader* reader,
                                                     const OutputFlags& flags,
                                                     std::optional<FileFormat> format,
                                                     arrow::Status* read_error);

/// \brief The schema as JSON: [{"name": ..., "type": ...}, ...].
nlohmann::json SchemaJson(const arrow::Schema& schema);

}  // namespace quiver
