// The entries listing as an Arrow table: one row per key, for the `entries` action (and
// `quiver ls`). Columns are documented in docs/management.md.
#pragma once

#include <memory>
#include <vector>

#include <arrow/result.h>
#include <arrow/table.h>

#include "cache/management.h"

namespace quiver {

/// \brief Build the entries table.
arrow::Result<std::shared_ptr<arrow::Table>> EntriesTable(const std::vector<EntryInfo>& entries);

/// \brief Serialize a table as an Arrow IPC stream.
arrow::Result<std::shared_ptr<arrow::Buffer>> TableToIpc(const arrow::Table& table);

}  // namespace quiver
