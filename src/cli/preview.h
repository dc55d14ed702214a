// Preview: the first rows of a result as a small text table for people — column names,
// their types, up to kPreviewRows rows, and the total row count.
//
// Thread-safety: free functions.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/table.h>

namespace quiver {

inline constexpr int64_t kPreviewRows = 10;

/// \brief Read all of `reader` (so the total is known), keeping its first `max_rows` rows.
arrow::Result<std::shared_ptr<arrow::Table>> ReadHead(arrow::RecordBatchReader* reader,
                                                      int64_t max_rows = kPreviewRows);

/// \brief Print `head` as a table, then "(N of TOTAL rows)" or "(TOTAL rows)".
void PrintPreview(const arrow::Table& head, int64_t total_rows, std::ostream& out);

}  // namespace quiver
