#include "cli/file_formats.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include <arrow/csv/api.h>
#include <arrow/io/file.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/table.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/writer.h>
#include <parquet/file_reader.h>
#include <parquet/metadata.h>

namespace quiver {

namespace {

constexpr const char* kChoices = "parquet, arrow, feather, ipc, arrows or csv";

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// Reads the batches of an IPC file one at a time.
class IpcFileBatchReader : public arrow::RecordBatchReader {
 public:
  explicit IpcFileBatchReader(std::shared_ptr<arrow::ipc::RecordBatchFileReader> file)
      : file_(std::move(file)) {}
  std::shared_ptr<arrow::Schema> schema() const override { return file_->schema(); }
  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* batch) override {
    if (next_ >= file_->num_record_batches()) {
      *batch = nullptr;
      return arrow::Status::OK();
    }
    return file_->ReadRecordBatch(next_++).Value(batch);
  }

 private:
  std::shared_ptr<arrow::ipc::RecordBatchFileReader> file_;
  int next_ = 0;
};

// Parquet's reader borrows its FileReader; this keeps both alive together.
class ParquetBatchReader : public arrow::RecordBatchReader {
 public:
  ParquetBatchReader(std::unique_ptr<parquet::arrow::FileReader> file,
                     std::unique_ptr<arrow::RecordBatchReader> batches)
      : file_(std::move(file)), batches_(std::move(batches)) {}
  std::shared_ptr<arrow::Schema> schema() const override { return batches_->schema(); }
  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* batch) override {
    return batches_->ReadNext(batch);
  }

 private:
  std::unique_ptr<parquet::arrow::FileReader> file_;
  std::unique_ptr<arrow::RecordBatchReader> batches_;
};

arrow::Result<InputFile> OpenArrow(const std::string& path,
                                   std::shared_ptr<arrow::io::ReadableFile> file) {
  InputFile in;
  ARROW_ASSIGN_OR_RAISE(auto head, file->ReadAt(0, 6));
  std::string magic = head->ToString();
  if (magic == "ARROW1") {
    ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchFileReader::Open(file));
    in.format = FileFormat::kArrowFile;
    in.total_rows = 0;
    ARROW_ASSIGN_OR_RAISE(*in.total_rows, reader->CountRows());
    in.reader = std::make_shared<IpcFileBatchReader>(std::move(reader));
  } else if (magic.substr(0, 4) == "FEA1") {
    // Arrow 26 deprecates the Feather v1 reader; v1 files predate Arrow 0.17 (2020).
    return arrow::Status::Invalid("'", path, "' is a Feather v1 file, which is not read; "
                                  "rewrite it as Feather v2 (pyarrow.feather.write_feather)");
  } else {
    ARROW_RETURN_NOT_OK(file->Seek(0));  // ReadAt() leaves the position undefined
    auto reader = arrow::ipc::RecordBatchStreamReader::Open(file);
    if (!reader.ok()) {
      return arrow::Status::Invalid("'", path, "' is not an Arrow IPC file or stream: ",
                                    reader.status().message());
    }
    in.format = FileFormat::kArrowStream;
    in.reader = std::move(*reader);
  }
  return in;
}

}  // namespace

arrow::Result<FileFormat> ParseFormatName(const std::string& name) {
  const std::string n = Lower(name);
  if (n == "parquet") return FileFormat::kParquet;
  if (n == "arrow" || n == "feather" || n == "ipc") return FileFormat::kArrowFile;
  if (n == "arrows") return FileFormat::kArrowStream;
  if (n == "csv") return FileFormat::kCsv;
  return arrow::Status::Invalid("unknown format '", name, "' (use ", kChoices, ")");
}

arrow::Result<FileFormat> FormatFromExtension(const std::string& path) {
  const std::string ext = Lower(std::filesystem::path(path).extension().string());
  if (ext == ".parquet" || ext == ".pq") return FileFormat::kParquet;
  if (ext == ".arrow" || ext == ".feather" || ext == ".ipc") return FileFormat::kArrowFile;
  if (ext == ".arrows") return FileFormat::kArrowStream;
  if (ext == ".csv") return FileFormat::kCsv;
  return arrow::Status::Invalid(
      "cannot tell the format of '", path, "' from its extension",
      ext.empty() ? "" : " '" + ext + "'",
      " (known: .parquet .pq .arrow .feather .ipc .arrows .csv); give --format ", kChoices);
}

const char* FormatName(FileFormat format) {
  switch (format) {
    case FileFormat::kParquet:
      return "parquet";
    case FileFormat::kArrowFile:
      return "arrow";
    case FileFormat::kArrowStream:
      return "arrows";
    case FileFormat::kCsv:
      return "csv";
  }
  return "?";
}

arrow::Result<InputFile> OpenInputFile(const std::string& path,
                                       std::optional<FileFormat> format) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return arrow::Status::IOError("no such file: '", path, "'");
  }
  if (std::filesystem::is_directory(path, ec)) {
    return arrow::Status::IOError("'", path, "' is a directory, not a file");
  }
  if (!format) {
    ARROW_ASSIGN_OR_RAISE(format, FormatFromExtension(path));
  }
  ARROW_ASSIGN_OR_RAISE(auto file, arrow::io::ReadableFile::Open(path));
  ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
  auto opened = [&]() -> arrow::Result<InputFile> {
    InputFile in;
    switch (*format) {
      case FileFormat::kParquet: {
        ARROW_ASSIGN_OR_RAISE(auto reader,
                              parquet::arrow::OpenFile(file, arrow::default_memory_pool()));
        in.total_rows = reader->parquet_reader()->metadata()->num_rows();
        ARROW_ASSIGN_OR_RAISE(auto batches, reader->GetRecordBatchReader());
        in.reader = std::make_shared<ParquetBatchReader>(std::move(reader), std::move(batches));
        in.format = FileFormat::kParquet;
        return in;
      }
      case FileFormat::kArrowFile:
      case FileFormat::kArrowStream:
        if (size < 6) return arrow::Status::Invalid("too short for Arrow IPC");
        return OpenArrow(path, file);
      case FileFormat::kCsv: {
        ARROW_ASSIGN_OR_RAISE(
            in.reader, arrow::csv::StreamingReader::Make(
                           arrow::io::default_io_context(), file,
                           arrow::csv::ReadOptions::Defaults(),
                           arrow::csv::ParseOptions::Defaults(),
                           arrow::csv::ConvertOptions::Defaults()));
        in.format = FileFormat::kCsv;
        return in;
      }
    }
    return arrow::Status::Invalid("unknown format");
  }();
  if (!opened.ok()) {
    return opened.status().WithMessage("cannot read '", path, "' as ", FormatName(*format),
                                       ": ", opened.status().message());
  }
  opened->file_bytes = size;
  return opened;
}

namespace {

// A file writer (Arrow's IPC writers, Parquet's FileWriter) and the file it writes to,
// closed in that order.
template <typename Writer>
class ClosingWriter : public BatchFileWriter {
 public:
  ClosingWriter(Writer writer, std::shared_ptr<arrow::io::OutputStream> sink)
      : writer_(std::move(writer)), sink_(std::move(sink)) {}
  arrow::Status Write(const arrow::RecordBatch& batch) override {
    return writer_->WriteRecordBatch(batch);
  }
  arrow::Status Close() override {
    ARROW_RETURN_NOT_OK(writer_->Close());
    return sink_->Close();
  }

 private:
  Writer writer_;
  std::shared_ptr<arrow::io::OutputStream> sink_;
};

using IpcWriter = ClosingWriter<std::shared_ptr<arrow::ipc::RecordBatchWriter>>;
using ParquetWriter = ClosingWriter<std::unique_ptr<parquet::arrow::FileWriter>>;

// Arrow's CSV writer refuses a schema with "Unsupported Type:T"; this names the first
// column it refuses (asking the writer itself, one column at a time) and what to do.
arrow::Status CsvSchemaError(const arrow::Schema& schema, const arrow::Status& refused) {
  for (const auto& field : schema.fields()) {
    ARROW_ASSIGN_OR_RAISE(auto probe_sink, arrow::io::BufferOutputStream::Create());
    if (arrow::csv::MakeCSVWriter(probe_sink, arrow::schema({field})).ok()) continue;
    return arrow::Status::TypeError(
        "column '", field->name(), "' has type ", field->type()->ToString(),
        ", which CSV cannot hold; write Parquet or Arrow IPC instead (a .parquet or .arrow "
        "file, or --format parquet|arrow)");
  }
  return refused;
}

}  // namespace

arrow::Result<std::unique_ptr<BatchFileWriter>> MakeBatchFileWriter(
    FileFormat format, const std::shared_ptr<arrow::Schema>& schema,
    std::shared_ptr<arrow::io::OutputStream> sink) {
  switch (format) {
    case FileFormat::kParquet: {
      auto arrow_props = parquet::ArrowWriterProperties::Builder().store_schema()->build();
      ARROW_ASSIGN_OR_RAISE(
          auto writer,
          parquet::arrow::FileWriter::Open(*schema, arrow::default_memory_pool(), sink,
                                           parquet::default_writer_properties(), arrow_props));
      return std::make_unique<ParquetWriter>(std::move(writer), std::move(sink));
    }
    case FileFormat::kArrowFile: {
      ARROW_ASSIGN_OR_RAISE(auto writer, arrow::ipc::MakeFileWriter(sink, schema));
      return std::make_unique<IpcWriter>(std::move(writer), std::move(sink));
    }
    case FileFormat::kArrowStream: {
      ARROW_ASSIGN_OR_RAISE(auto writer, arrow::ipc::MakeStreamWriter(sink, schema));
      return std::make_unique<IpcWriter>(std::move(writer), std::move(sink));
    }
    case FileFormat::kCsv: {
      auto writer = arrow::csv::MakeCSVWriter(sink, schema);
      if (!writer.ok()) return CsvSchemaError(*schema, writer.status());
      return std::make_unique<IpcWriter>(std::move(*writer), std::move(sink));
    }
  }
  return arrow::Status::Invalid("unknown format");
}

}  // namespace quiver
