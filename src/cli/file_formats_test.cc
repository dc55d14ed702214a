#include "cli/file_formats.h"

#include <stdlib.h>

#include <filesystem>

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <arrow/io/memory.h>
#include <gtest/gtest.h>

namespace quiver {
namespace {

namespace fs = std::filesystem;

class FileFormatsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "quiver-formats-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Two batches of the types every format (CSV included) reads back as written.
  static std::shared_ptr<arrow::Table> Sample() {
    arrow::Int64Builder ids;
    arrow::DoubleBuilder scores;
    arrow::StringBuilder names;
    arrow::BooleanBuilder flags;
    for (int i = 0; i < 20; ++i) {
      EXPECT_TRUE(ids.Append(i).ok() && scores.Append(i * 0.5).ok() &&
                  names.Append("n" + std::to_string(i)).ok() && flags.Append(i % 2 == 0).ok());
    }
    auto schema = arrow::schema({arrow::field("id", arrow::int64()),
                                 arrow::field("score", arrow::float64()),
                                 arrow::field("name", arrow::utf8()),
                                 arrow::field("flag", arrow::boolean())});
    auto table = arrow::Table::Make(schema, {ids.Finish().ValueOrDie(),
                                             scores.Finish().ValueOrDie(),
                                             names.Finish().ValueOrDie(),
                                             flags.Finish().ValueOrDie()});
    return table;
  }

  std::string Write(const std::string& name, FileFormat format, const arrow::Table& table) {
    const std::string path = (dir_ / name).string();
    auto sink = arrow::io::FileOutputStream::Open(path).ValueOrDie();
    auto writer = MakeBatchFileWriter(format, table.schema(), sink).ValueOrDie();
    arrow::TableBatchReader batches(table);
    batches.set_chunksize(8);  // 3 batches
    std::shared_ptr<arrow::RecordBatch> batch;
    while (batches.ReadNext(&batch).ok() && batch) EXPECT_TRUE(writer->Write(*batch).ok());
    EXPECT_TRUE(writer->Close().ok());
    return path;
  }

  fs::path dir_;
};

TEST_F(FileFormatsTest, EveryFormatReadsBackWhatWasWritten) {
  auto table = Sample();
  for (auto [name, format] : {std::pair{"t.parquet", FileFormat::kParquet},
                              std::pair{"t.arrow", FileFormat::kArrowFile},
                              std::pair{"t.arrows", FileFormat::kArrowStream},
                              std::pair{"t.csv", FileFormat::kCsv}}) {
    SCOPED_TRACE(name);
    auto path = Write(name, format, *table);
    auto input = OpenInputFile(path, std::nullopt);
    ASSERT_TRUE(input.ok()) << input.status().ToString();
    EXPECT_EQ(input->format, format);
    EXPECT_GT(input->file_bytes, 0);
    if (format == FileFormat::kParquet || format == FileFormat::kArrowFile) {
      EXPECT_EQ(input->total_rows, 20);
    }
    auto read = input->reader->ToTable().ValueOrDie();
    EXPECT_TRUE(read->Equals(*table)) << read->ToString();
  }
}

TEST_F(FileFormatsTest, AnIpcStreamInAnArrowFileIsRecognised) {
  auto path = Write("stream.arrow", FileFormat::kArrowStream, *Sample());
  auto input = OpenInputFile(path, std::nullopt);
  ASSERT_TRUE(input.ok()) << input.status().ToString();
  EXPECT_EQ(input->format, FileFormat::kArrowStream);
  EXPECT_EQ(input->reader->ToTable().ValueOrDie()->num_rows(), 20);
}

TEST_F(FileFormatsTest, ErrorsNameTheInput) {
  auto missing = OpenInputFile((dir_ / "none.csv").string(), std::nullopt);
  EXPECT_NE(missing.status().message().find("no such file: '"), std::string::npos);
  auto dir = OpenInputFile(dir_.string(), FileFormat::kCsv);
  EXPECT_NE(dir.status().message().find("is a directory"), std::string::npos);
  auto ext = FormatFromExtension("data.xlsx");
  EXPECT_NE(ext.status().message().find("'data.xlsx'"), std::string::npos);
  EXPECT_NE(ext.status().message().find("'.xlsx'"), std::string::npos);
  EXPECT_NE(ParseFormatName("orc").status().message().find("unknown format 'orc'"),
            std::string::npos);
  auto csv = Write("t.csv", FileFormat::kCsv, *Sample());
  auto as_parquet = OpenInputFile(csv, FileFormat::kParquet);
  EXPECT_NE(as_parquet.status().message().find("cannot read '" + csv + "' as parquet"),
            std::string::npos)
      << as_parquet.status().ToString();
}

TEST(CsvWriterTest, AColumnCsvCannotHoldIsNamedWithTheAlternatives) {
  auto schema = arrow::schema({arrow::field("id", arrow::int64()),
                               arrow::field("tags", arrow::list(arrow::utf8())),
                               arrow::field("point", arrow::struct_({arrow::field(
                                                         "x", arrow::float64())}))});
  auto sink = arrow::io::BufferOutputStream::Create().ValueOrDie();
  auto writer = MakeBatchFileWriter(FileFormat::kCsv, schema, sink);
  ASSERT_FALSE(writer.ok());
  const std::string message = writer.status().message();
  EXPECT_NE(message.find("column 'tags' has type list<item: string>, which CSV cannot hold"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("Parquet or Arrow IPC"), std::string::npos) << message;
  // The other formats hold it.
  for (auto format : {FileFormat::kParquet, FileFormat::kArrowFile, FileFormat::kArrowStream}) {
    auto other = arrow::io::BufferOutputStream::Create().ValueOrDie();
    EXPECT_TRUE(MakeBatchFileWriter(format, schema, other).ok()) << FormatName(format);
  }
}

TEST(FileFormatNamesTest, NamesAndExtensions) {
  EXPECT_EQ(*ParseFormatName("Feather"), FileFormat::kArrowFile);
  EXPECT_EQ(*ParseFormatName("ipc"), FileFormat::kArrowFile);
  EXPECT_EQ(*ParseFormatName("arrows"), FileFormat::kArrowStream);
  EXPECT_EQ(*FormatFromExtension("x/y.PQ"), FileFormat::kParquet);
  EXPECT_EQ(*FormatFromExtension("y.feather"), FileFormat::kArrowFile);
  EXPECT_FALSE(FormatFromExtension("noext").ok());
  for (auto format : {FileFormat::kParquet, FileFormat::kArrowFile, FileFormat::kArrowStream,
                      FileFormat::kCsv}) {
    EXPECT_EQ(*ParseFormatName(FormatName(format)), format);
  }
}

}  // namespace
}  // namespace quiver
