#include "format/table_encoding.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <optional>
#include <string>
#include <vector>

#include <arrow/csv/writer.h>
#include <arrow/ipc/writer.h>
#include <arrow/util/string.h>
#include <parquet/arrow/writer.h>
#include <parquet/exception.h>

#include "format/json_lines.h"

namespace quiver {

namespace {

struct EncodingInfo {
  Encoding encoding;
  std::string_view name, content_type, extension;
};

constexpr std::array<EncodingInfo, 5> kEncodings = {{
    {Encoding::kArrowStream, "arrow", "application/vnd.apache.arrow.stream", ".arrows"},
    {Encoding::kArrowFile, "arrow-file", "application/vnd.apache.arrow.file", ".arrow"},
    {Encoding::kParquet, "parquet", "application/vnd.apache.parquet", ".parquet"},
    {Encoding::kCsv, "csv", "text/csv", ".csv"},
    {Encoding::kJsonLines, "jsonl", "application/x-ndjson", ".jsonl"},
}};

// Media types accepted in an Accept header besides the ones sent (older or informal names).
struct MediaAlias {
  std::string_view media_type;
  Encoding encoding;
};
constexpr std::array<MediaAlias, 5> kAliases = {{
    {"application/x-parquet", Encoding::kParquet},
    {"application/parquet", Encoding::kParquet},
    {"application/jsonl", Encoding::kJsonLines},
    {"application/x-jsonlines", Encoding::kJsonLines},
    {"application/jsonlines", Encoding::kJsonLines},
}};

const EncodingInfo& Info(Encoding encoding) {
  for (const auto& info : kEncodings) {
    if (info.encoding == encoding) return info;
  }
  return kEncodings[0];
}

std::string ValidNames() {
  std::string names;
  for (const auto& info : kEncodings) {
    if (!names.empty()) names += ", ";
    names += info.name;
  }
  return names;
}

class NotAcceptableDetail final : public arrow::StatusDetail {
 public:
  const char* type_id() const override { return "quiver::format::not_acceptable"; }
  std::string ToString() const override { return "not acceptable"; }
};

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The encoding a media range (lower-case, without parameters) selects, if any.
std::optional<Encoding> MatchRange(std::string_view range) {
  if (range == "*/*" || range == "application/*") return Encoding::kArrowStream;
  if (range == "text/*") return Encoding::kCsv;
  for (const auto& info : kEncodings) {
    if (range == info.content_type) return info.encoding;
  }
  for (const auto& alias : kAliases) {
    if (range == alias.media_type) return alias.encoding;
  }
  return std::nullopt;
}

// The q-value of a media range's parameters ("q=0.5"); 1 when absent.
arrow::Result<double> QValue(std::string_view params, std::string_view range) {
  double q = 1.0;
  while (!params.empty()) {
    auto semi = params.find(';');
    auto param = Trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view() : params.substr(semi + 1);
    if (param.size() < 2 || (param[0] != 'q' && param[0] != 'Q') || param[1] != '=') continue;
    auto value = Trim(param.substr(2));
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), q);
    if (ec != std::errc() || end != value.data() + value.size() || q < 0 || q > 1) {
      return arrow::Status::Invalid("Accept: bad q-value '", value, "' for '", range,
                                    "' (a number from 0 to 1)");
    }
  }
  return q;
}

}  // namespace

arrow::Result<Encoding> EncodingFromName(std::string_view name) {
  const std::string lower = arrow::internal::AsciiToLower(name);
  for (const auto& info : kEncodings) {
    if (lower == info.name) return info.encoding;
  }
  return arrow::Status::Invalid("unknown format '", name, "' (formats: ", ValidNames(), ")");
}

std::string_view EncodingName(Encoding encoding) { return Info(encoding).name; }
std::string_view ContentType(Encoding encoding) { return Info(encoding).content_type; }
std::string_view FileExtension(Encoding encoding) { return Info(encoding).extension; }

arrow::Result<Encoding> EncodingFromAccept(std::string_view accept) {
  if (Trim(accept).empty()) return Encoding::kArrowStream;
  std::optional<Encoding> best;
  double best_q = 0;
  std::string_view rest = accept;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    auto item = Trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty()) continue;
    auto semi = item.find(';');
    const std::string range = arrow::internal::AsciiToLower(Trim(item.substr(0, semi)));
    ARROW_ASSIGN_OR_RAISE(double q, QValue(semi == std::string_view::npos
                                               ? std::string_view()
                                               : item.substr(semi + 1),
                                           range));
    auto encoding = MatchRange(range);
    if (encoding && q > best_q) {
      best = encoding;
      best_q = q;
    }
  }
  if (!best) {
    std::string served;
    for (const auto& info : kEncodings) {
      if (!served.empty()) served += ", ";
      served += info.content_type;
    }
    return arrow::Status::Invalid("not acceptable: no format asked for by Accept '", accept,
                                  "' is served (served: ", served, ")")
        .WithDetail(std::make_shared<NotAcceptableDetail>());
  }
  return *best;
}

bool IsNotAcceptable(const arrow::Status& status) {
  return !status.ok() && status.detail() &&
         std::string_view(status.detail()->type_id()) == "quiver::format::not_acceptable";
}

namespace {

// Parquet's writer takes a shared sink and may close it; the caller's stream stays open.
class UnclosedStream final : public arrow::io::OutputStream {
 public:
  explicit UnclosedStream(arrow::io::OutputStream* out) : out_(out) {}
  arrow::Status Close() override {
    closed_ = true;
    return out_->Flush();
  }
  bool closed() const override { return closed_; }
  arrow::Result<int64_t> Tell() const override { return out_->Tell(); }
  arrow::Status Write(const void* data, int64_t nbytes) override {
    return out_->Write(data, nbytes);
  }
  arrow::Status Write(const std::shared_ptr<arrow::Buffer>& data) override {
    return out_->Write(data);
  }
  arrow::Status Flush() override { return out_->Flush(); }

 private:
  arrow::io::OutputStream* out_;
  bool closed_ = false;
};

arrow::Status EncodeParquet(arrow::RecordBatchReader* in, arrow::io::OutputStream* out) {
  auto sink = std::make_shared<UnclosedStream>(out);
  auto properties = parquet::WriterProperties::Builder()
                        .compression(arrow::Compression::SNAPPY)
                        ->build();
  // The Arrow schema is stored too, so readers get back the exact types (time zones, ...).
  auto arrow_properties = parquet::ArrowWriterProperties::Builder().store_schema()->build();
  ARROW_ASSIGN_OR_RAISE(auto writer,
                        parquet::arrow::FileWriter::Open(*in->schema(),
                                                         arrow::default_memory_pool(), sink,
                                                         properties, arrow_properties));
  while (true) {
    ARROW_ASSIGN_OR_RAISE(auto batch, in->Next());
    if (!batch) break;
    // Buffered into the current row group; a full one (1 Mi rows) is written out.
    ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(*batch));
  }
  return writer->Close();
}

arrow::Status WriteAll(arrow::RecordBatchReader* in, arrow::ipc::RecordBatchWriter* writer) {
  while (true) {
    ARROW_ASSIGN_OR_RAISE(auto batch, in->Next());
    if (!batch) break;
    ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(*batch));
  }
  return writer->Close();
}

arrow::Result<std::shared_ptr<arrow::ipc::RecordBatchWriter>> MakeWriter(
    Encoding encoding, const std::shared_ptr<arrow::Schema>& schema,
    arrow::io::OutputStream* out) {
  switch (encoding) {
    case Encoding::kArrowStream:
      return arrow::ipc::MakeStreamWriter(out, schema);
    case Encoding::kArrowFile:
      return arrow::ipc::MakeFileWriter(out, schema);
    case Encoding::kCsv:
      return arrow::csv::MakeCSVWriter(out, schema);
    case Encoding::kJsonLines:
      return MakeJsonLinesWriter(out, schema);
    case Encoding::kParquet:
      break;
  }
  return arrow::Status::Invalid("no batch writer for ", EncodingName(encoding));
}

arrow::Status Encode(arrow::RecordBatchReader* in, Encoding encoding,
                     arrow::io::OutputStream* out) {
  if (encoding == Encoding::kParquet) {
    // Parquet's writer throws on some errors; they stop at this edge.
    PARQUET_CATCH_AND_RETURN(EncodeParquet(in, out));
  }
  ARROW_ASSIGN_OR_RAISE(auto writer, MakeWriter(encoding, in->schema(), out));
  return WriteAll(in, writer.get());
}

}  // namespace

arrow::Status EncodeStream(arrow::RecordBatchReader* in, Encoding encoding,
                           arrow::io::OutputStream* out) {
  auto st = Encode(in, encoding, out);
  if (st.ok()) return st;
  return arrow::Status(st.code(), "encoding as " + std::string(EncodingName(encoding)) + ": " +
                                      st.message(),
                       st.detail());
}

}  // namespace quiver
