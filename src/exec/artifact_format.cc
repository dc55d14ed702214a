#include "exec/artifact_format.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>
#include <vector>

#include <arrow/csv/api.h>
#include <arrow/io/api.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/record_batch.h>
#include <arrow/util/iterator.h>
#include <arrow/json/api.h>
#include <arrow/util/key_value_metadata.h>
#include <parquet/arrow/reader.h>
#include <parquet/exception.h>

#include "common/rejection.h"

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

// Borrows `reader`; keeps `owner` (what the reader reads through) alive as long as it.
template <typename Owner>
std::shared_ptr<arrow::RecordBatchReader> Keeping(
    std::shared_ptr<Owner> owner, std::shared_ptr<arrow::RecordBatchReader> reader) {
  auto schema = reader->schema();
  auto batches = arrow::MakeFunctionIterator(
      [owner = std::move(owner), reader = std::move(reader)] { return reader->Next(); });
  return *arrow::RecordBatchReader::MakeFromIterator(std::move(batches), std::move(schema));
}

// A reader of the file's batches, one at a time: nothing reads the whole file at once.
arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenReader(
    const std::shared_ptr<arrow::io::RandomAccessFile>& file, ArtifactFormat format,
    const arrow::StopToken& stop) {
  arrow::MemoryPool* pool = arrow::default_memory_pool();
  switch (format) {
    case ArtifactFormat::kParquet: {
      // The Parquet library throws; OpenFile and the batch reader turn that into a Status.
      ARROW_ASSIGN_OR_RAISE(auto unique, parquet::arrow::OpenFile(file, pool));
      std::shared_ptr<parquet::arrow::FileReader> reader = std::move(unique);
      // One row group at a time.
      ARROW_ASSIGN_OR_RAISE(auto batches, reader->GetRecordBatchReader());
      return Keeping(std::move(reader), std::move(batches));
    }
    case ArtifactFormat::kFeather: {
      ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchFileReader::Open(file));
      auto schema = reader->schema();
      auto batches = arrow::MakeFunctionIterator(
          [reader, i = 0]() mutable -> arrow::Result<std::shared_ptr<arrow::RecordBatch>> {
            if (i == reader->num_record_batches()) return nullptr;
            return reader->ReadRecordBatch(i++);
          });
      return arrow::RecordBatchReader::MakeFromIterator(std::move(batches), std::move(schema));
    }
    case ArtifactFormat::kIpcStream:
      return arrow::ipc::RecordBatchStreamReader::Open(file);
    case ArtifactFormat::kCsv: {
      auto read = arrow::csv::ReadOptions::Defaults();
      read.use_threads = false;
      return arrow::csv::StreamingReader::Make(arrow::io::IOContext(pool, stop), file, read,
                                               arrow::csv::ParseOptions::Defaults(),
                                               arrow::csv::ConvertOptions::Defaults());
    }
    case ArtifactFormat::kJson: {
      auto read = arrow::json::ReadOptions::Defaults();
      read.use_threads = false;
      return arrow::json::StreamingReader::Make(file, read, arrow::json::ParseOptions::Defaults(),
                                                arrow::io::IOContext(pool, stop));
    }
  }
  return arrow::Status::Invalid("unknown artifact format");
}

// Reads batch by batch, and stops as soon as what was read would not fit in max_bytes.
arrow::Result<std::shared_ptr<arrow::Table>> Decode(
    const std::shared_ptr<arrow::io::RandomAccessFile>& file, ArtifactFormat format,
    const arrow::StopToken& stop, int64_t max_bytes) {
  ARROW_ASSIGN_OR_RAISE(auto reader, OpenReader(file, format, stop));
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  int64_t bytes = 0;
  while (true) {
    ARROW_RETURN_NOT_OK(stop.Poll());
    ARROW_ASSIGN_OR_RAISE(auto batch, reader->Next());
    if (!batch) break;
    // A batch that decoded but breaks Arrow's invariants is as corrupt as one that did not.
    ARROW_RETURN_NOT_OK(batch->Validate());
    int64_t size = 0;
    ARROW_RETURN_NOT_OK(arrow::ipc::GetRecordBatchSize(*batch, &size));
    bytes += size;
    if (bytes > max_bytes) {
      return ArtifactTooLarge("its data passed " + std::to_string(bytes) + " bytes", max_bytes);
    }
    batches.push_back(std::move(batch));
  }
  return arrow::Table::FromRecordBatches(reader->schema(), std::move(batches));
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

arrow::Status ArtifactTooLarge(const std::string& what, int64_t max_bytes) {
  return Reject(arrow::Status::CapacityError("too large: ", what, ", more than max_entry_bytes (",
                                             max_bytes, ")"),
                RejectionKind::kTooLarge, "max_entry_bytes", max_bytes);
}

arrow::Result<std::shared_ptr<arrow::Table>> ReadArtifact(
    std::shared_ptr<arrow::io::RandomAccessFile> file, ArtifactFormat format,
    const arrow::StopToken& stop, int64_t max_bytes) {
  auto table = Decode(file, format, stop, max_bytes);
  if (table.ok()) return table;
  const arrow::Status& st = table.status();
  if (st.IsCancelled() || st.IsKeyError() || RejectionOf(st)) return st;
  // Anything the reader could not make sense of is the file's fault, not the server's.
  return arrow::Status::Invalid("cannot read it as ", ArtifactFormatName(format), ": ",
                                st.message());
}

}  // namespace quiver
