// Table encodings: the formats a table can be sent in besides the stored Arrow IPC stream,
// their names and media types, HTTP content negotiation, and an encoder that streams a
// RecordBatchReader into any of them with Arrow C++'s own writers.
//
//   name         media type                          writer
//   arrow        application/vnd.apache.arrow.stream arrow::ipc stream writer
//   arrow-file   application/vnd.apache.arrow.file   arrow::ipc file writer
//   parquet      application/vnd.apache.parquet      parquet::arrow::FileWriter
//   csv          text/csv                            arrow::csv writer
//   jsonl        application/x-ndjson                format/json_lines.h (Arrow C++ has no
//                                                    JSON writer yet: GH-47173)
//
// Every encoder writes batch by batch as it reads; nothing holds the whole table (a Parquet
// row group is buffered until it is full, as Parquet requires).
//
// Thread-safety: pure functions; EncodeStream uses only its arguments.
#pragma once

#include <string>
#include <string_view>

#include <arrow/io/interfaces.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>

namespace quiver {

enum class Encoding { kArrowStream, kArrowFile, kParquet, kCsv, kJsonLines };

/// \brief The encoding named `name`: "arrow", "arrow-file", "parquet", "csv" or "jsonl"
/// (case-insensitive). The error names the bad name and the valid ones.
arrow::Result<Encoding> EncodingFromName(std::string_view name);
/// \brief The short name of `encoding` ("parquet").
std::string_view EncodingName(Encoding encoding);
/// \brief The media type sent as Content-Type ("application/vnd.apache.parquet").
std::string_view ContentType(Encoding encoding);
/// \brief A file name extension for `encoding` (".parquet").
std::string_view FileExtension(Encoding encoding);

/// \brief Choose the encoding an HTTP Accept header prefers (RFC 9110 section 12.5.1):
/// media ranges with q-values, "*/*" and "type/*" wildcards; the highest q wins, the first
/// listed among equals, and q=0 excludes. An empty header is Arrow stream. When nothing
/// acceptable is served the error (IsNotAcceptable) names what was asked for and what is
/// served -- the 406 answer.
arrow::Result<Encoding> EncodingFromAccept(std::string_view accept);
/// \brief True if `status` came from EncodingFromAccept finding nothing acceptable.
bool IsNotAcceptable(const arrow::Status& status);

/// \brief Read `in` to its end and write it to `out` encoded as `encoding`. `out` is not
/// closed. Errors name the encoding (e.g. a type CSV cannot hold).
arrow::Status EncodeStream(arrow::RecordBatchReader* in, Encoding encoding,
                           arrow::io::OutputStream* out);

}  // namespace quiver
