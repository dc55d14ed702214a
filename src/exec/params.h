// Query parameters: a JSON array of scalars, bound positionally through ADBC.
//
// JSON -> Arrow: true/false -> bool, integers -> int64, other numbers -> float64,
// strings -> utf8, null -> a null utf8 value. Nested arrays and objects are refused.
#pragma once

#include <memory>
#include <string>

#include <arrow/record_batch.h>
#include <arrow/result.h>

namespace quiver {

/// \brief Build the one-row batch that binds `json_array`'s values to parameters 1..n.
/// An empty array gives nullptr (nothing to bind).
arrow::Result<std::shared_ptr<arrow::RecordBatch>> ParamsFromJson(const std::string& json_array);

}  // namespace quiver
