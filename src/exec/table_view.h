// Data views: a projection, filter, sort and slice of a table, applied with Arrow compute to a
// RecordBatchReader -- what the data cache derives from a cached entry (docs/views.md).
//
// Order of operations: filter, then sort, then offset/limit, then projection (so a filter or
// a sort may use columns the projection drops). Without a sort the view streams: each input
// batch is filtered, sliced and projected as it is read, and reading stops once `limit` rows
// are out. A sort needs every filtered row first (Arrow's sort_indices over the filtered
// table, stable), then slices and projects.
//
// Arrow compute rather than an Acero plan: a view is one linear pipeline over one reader, and
// the kernels Acero would schedule (filter, sort_indices, take) are called directly, on the
// caller's thread, with no executor to start or to stop when the reader is dropped early.
//
// Thread-safety: ViewSpec is a value type; a reader from ApplyView belongs to one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/record_batch.h>
#include <arrow/result.h>

namespace quiver {

struct SortKey {
  std::string column;
  bool descending = false;
  bool operator==(const SortKey&) const = default;
};

struct ViewSpec {
  /// Columns to keep, in this order (empty: all, in the table's order).
  std::vector<std::string> columns;
  /// A filter expression (exec/filter_expr.h); empty: every row.
  std::string filter;
  /// Sort keys, most significant first; nulls sort last.
  std::vector<SortKey> sort;
  /// Rows to skip (after filter and sort), and the most rows to return (empty: all).
  int64_t offset = 0;
  std::optional<int64_t> limit;

  /// True if the view changes nothing (the table as it is).
  bool empty() const {
    return columns.empty() && filter.empty() && sort.empty() && offset == 0 && !limit;
  }
  /// \brief The view as canonical JSON (keys sorted, defaults left out): equal views give
  /// equal text, so it can be part of a cache key.
  std::string CanonicalJson() const;
  bool operator==(const ViewSpec&) const = default;
};

/// \brief Parse a sort key "col" / "-col" / "col desc" / "col asc" (the JSON and HTTP
/// spelling); the error names the bad key.
arrow::Result<SortKey> ParseSortKey(const std::string& text);

/// \brief Check `view` against `schema` (unknown columns, bad filter, negative offset or
/// limit); errors are Invalid and name the problem.
arrow::Status ValidateView(const ViewSpec& view, const arrow::Schema& schema);

/// \brief The view of `input`: a reader of the rows and columns `view` selects. Fails at
/// once for an invalid view (as ValidateView); errors while reading come from the reader.
arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> ApplyView(
    std::shared_ptr<arrow::RecordBatchReader> input, const ViewSpec& view);

}  // namespace quiver
