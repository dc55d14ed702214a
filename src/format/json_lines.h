// JSON lines (https://jsonlines.org): one JSON object per row, keyed by column name.
//
// Arrow C++ 26 reads JSON but has no JSON writer (GH-47173 proposes one), so the rows are
// rendered here with as much of Arrow and as little by hand as possible: the text escaping of
// strings and names and the shortest round-trip form of numbers come from nlohmann::json
// (non-finite floats become null, as JSON has no NaN); columns of types JSON has no literal
// for -- dates, times, timestamps, durations, decimals, intervals -- are cast to text by
// Arrow's own cast kernel (Scalar::ToString for the few nested inside lists or structs);
// binary values are base64 (Arrow's encoder); dictionaries are written as their values;
// lists and fixed-size lists as arrays, maps as arrays of {"key", "value"} objects, structs
// as objects. A null is `null` (and the key is kept, so every line has every column).
//
// Thread-safety: one thread at a time.
#pragma once

#include <memory>

#include <arrow/io/interfaces.h>
#include <arrow/ipc/writer.h>
#include <arrow/result.h>

namespace quiver {

/// \brief A RecordBatchWriter that writes each batch to `sink` as JSON lines as soon as it
/// is given. `sink` is not owned and not closed.
arrow::Result<std::shared_ptr<arrow::ipc::RecordBatchWriter>> MakeJsonLinesWriter(
    arrow::io::OutputStream* sink, std::shared_ptr<arrow::Schema> schema);

}  // namespace quiver
