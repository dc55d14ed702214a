#include "exec/artifact_format.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

#include <arrow/csv/api.h>
#include <arrow/io/api.h>
#include <arrow/ipc/reader.h>
#include <arrow/json/api.h>
#include <arrow/util/key_value_metadata.h>
#include <parquet/arrow/reader.h>
#include <parquet/exception.h>

namespace quiver {

namespace {

struct Known {
  ArtifactFormat format;
  const char* name;
  std::array<const char*, 3> extensions;
};

constexpr std::array<Known, 5> kFormats = {{
    {ArtifactFormat::kParquet, "parquet", {".parquet", ".pq", nullptr}},
    {ArtifactFormat::kFeather, "feather", {".feather", ".arrow", ".ipc"}},
    {ArtifactFormat::kIpcStream, "ipc_stream", {".arrows", nullptr, nullptr}},
    {ArtifactFormat::kCsv, "csv", {".csv", nullptr, nullptr}},
    {ArtifactFormat::kJson, "json", {".json", ".jsonl", ".ndjson"}},
}};

std::string KnownNames() {
  std::string out;
  for (const auto& k : kFormats) out += std::string(out.empty() ? "" : ", ") + k.name;
  return out;
}

arrow::Result<std::shared_ptr<arrow::Table>> Decode(
    const std::shared_ptr<arrow::io::RandomAccessFile>& file, ArtifactFormat format,
    const arrow::StopToken& stop) {
  arrow::MemoryPool* pool = arrow::default_memory_pool();
  switch (format) {
    case ArtifactFormat::kParquet: {
      // The Parquet library throws; OpenFile and ReadTable turn that into a Status.
      ARROW_ASSIGN_OR_RAISE(auto reader, parquet::arrow::OpenFile(file, pool));
      return reader->ReadTable();
    }
    case ArtifactFormat::kFeather: {
      ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchFileReader::Open(file));
      return reader->ToTable();
    }
    case ArtifactFormat::kIpcStream: {
      ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchStreamReader::Open(file));
      return reader->ToTable();
    }
    case ArtifactFormat::kCsv: {
      auto read = arrow::csv::ReadOptions::Defaults();
      read.use_threads = false;
      ARROW_ASSIGN_OR_RAISE(
          auto reader,
          arrow::csv::TableReader::Make(arrow::io::IOContext(pool, stop), file, read,
                                        arrow::csv::ParseOptions::Defaults(),
                                        arrow::csv::ConvertOptions::Defaults()));
      return reader->Read();
    }
    case ArtifactFormat::kJson: {
      auto read = arrow::json::ReadOptions::Defaults();
      read.use_threads = false;
      ARROW_ASSIGN_OR_RAISE(auto reader,
                            arrow::json::TableReader::Make(
                                pool, file, read, arrow::json::ParseOptions::Defaults()));
      return reader->Read();
    }
  }
  return arrow::Status::Invalid("unknown artifact format");
}

}  // namespace

const char* ArtifactFormatName(ArtifactFormat format) {
  for (const auto& k : kFormats) {
    if (k.format == format) return k.name;
  }
  return "?";
}

arrow::Result<ArtifactFormat> ArtifactFormatFromName(const std::string& name) {
  for (const auto& k : kFormats) {
    if (name == k.name) return k.format;
  }
  return arrow::Status::Invalid("unknown artifact format '", name, "'; known: ", KnownNames());
}

arrow::Result<ArtifactFormat> ArtifactFormatFromPath(const std::string& path) {
  std::string lower = path;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const auto& k : kFormats) {
    for (const char* ext : k.extensions) {
      if (ext && lower.ends_with(ext)) return k.format;
    }
  }
  return arrow::Status::Invalid("cannot tell the format of '", path,
                                "' from its extension; name it in \"format\" (", KnownNames(),
                                ")");
}

arrow::Result<std::shared_ptr<arrow::Table>> ReadArtifact(
    std::shared_ptr<arrow::io::RandomAccessFile> file, ArtifactFormat format,
    const arrow::StopToken& stop) {
  auto table = Decode(file, format, stop);
  if (table.ok()) {
    // A table that decoded but breaks Arrow's invariants is as corrupt as one that did not.
    auto valid = (*table)->Validate();
    if (valid.ok()) return table;
    table = valid;
  }
  const arrow::Status& st = table.status();
  if (st.IsCancelled() || st.IsKeyError()) return st;
  // Anything the reader could not make sense of is the file's fault, not the server's.
  return arrow::Status::Invalid("cannot read it as ", ArtifactFormatName(format), ": ",
                                st.message());
}

}  // namespace quiver
