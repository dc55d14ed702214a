#include "format/table_encoding.h"

#include <arrow/api.h>
#include <arrow/csv/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/api.h>
#include <arrow/json/api.h>
#include <arrow/json/from_string.h>
#include <gtest/gtest.h>
#include <parquet/arrow/reader.h>

#include "common/testing.h"

namespace quiver {
namespace {

std::shared_ptr<arrow::Table> Table() {
  auto schema = arrow::schema({arrow::field("id", arrow::int64()),
                               arrow::field("price", arrow::float64()),
                               arrow::field("name", arrow::utf8())});
  auto col = [](std::shared_ptr<arrow::DataType> t, const char* json) {
    return *arrow::json::ArrayFromJSONString(t, json);
  };
  auto b1 = arrow::RecordBatch::Make(
      schema, 2, {col(arrow::int64(), "[1, 2]"), col(arrow::float64(), "[1.5, null]"),
                  col(arrow::utf8(), R"(["a \"quoted\", line\nbreak", "é"])")});
  auto b2 = arrow::RecordBatch::Make(
      schema, 1, {col(arrow::int64(), "[3]"), col(arrow::float64(), "[-2.25]"),
                  col(arrow::utf8(), "[null]")});
  return *arrow::Table::FromRecordBatches(schema, {b1, b2});
}

std::shared_ptr<arrow::Buffer> Encode(const std::shared_ptr<arrow::Table>& table, Encoding e) {
  auto reader = std::make_shared<arrow::TableBatchReader>(table);
  auto sink = *arrow::io::BufferOutputStream::Create();
  auto st = EncodeStream(reader.get(), e, sink.get());
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_FALSE(sink->closed());  // the caller's stream stays open
  return *sink->Finish();
}

std::shared_ptr<arrow::Table> Decode(const std::shared_ptr<arrow::Buffer>& bytes, Encoding e,
                                     const std::shared_ptr<arrow::Schema>& schema) {
  auto in = std::make_shared<arrow::io::BufferReader>(bytes);
  switch (e) {
    case Encoding::kArrowStream:
      return *(*arrow::ipc::RecordBatchStreamReader::Open(in))->ToTable();
    case Encoding::kArrowFile: {
      auto file = *arrow::ipc::RecordBatchFileReader::Open(in);
      return *file->ToTable();
    }
    case Encoding::kParquet: {
      auto reader = *parquet::arrow::OpenFile(in, arrow::default_memory_pool());
      return *reader->ReadTable();
    }
    case Encoding::kCsv: {
      auto convert = arrow::csv::ConvertOptions::Defaults();
      for (const auto& f : schema->fields()) convert.column_types[f->name()] = f->type();
      convert.strings_can_be_null = true;
      auto r = *arrow::csv::TableReader::Make(arrow::io::default_io_context(), in,
                                              arrow::csv::ReadOptions::Defaults(),
                                              arrow::csv::ParseOptions::Defaults(), convert);
      return *r->Read();
    }
    case Encoding::kJsonLines: {
      auto parse = arrow::json::ParseOptions::Defaults();
      parse.explicit_schema = schema;
      parse.newlines_in_values = false;
      auto r = *arrow::json::TableReader::Make(arrow::default_memory_pool(), in,
                                               arrow::json::ReadOptions::Defaults(), parse);
      return *r->Read();
    }
  }
  return nullptr;
}

TEST(TableEncodingTest, EveryEncodingRoundTripsThroughArrowsOwnReader) {
  auto table = Table();
  for (auto e : {Encoding::kArrowStream, Encoding::kArrowFile, Encoding::kParquet,
                 Encoding::kCsv, Encoding::kJsonLines}) {
    SCOPED_TRACE(std::string(EncodingName(e)));
    auto decoded = Decode(Encode(table, e), e, table->schema());
    ASSERT_TRUE(decoded);
    ASSERT_OK_AND_ASSIGN(auto combined, decoded->CombineChunks());
    ASSERT_OK_AND_ASSIGN(auto expected, table->CombineChunks());
    EXPECT_TRUE(combined->Equals(*expected)) << combined->ToString();
  }
}

TEST(TableEncodingTest, JsonLinesIsOneObjectPerRow) {
  auto bytes = Encode(Table(), Encoding::kJsonLines)->ToString();
  EXPECT_EQ(bytes,
            "{\"id\":1,\"price\":1.5,\"name\":\"a \\\"quoted\\\", line\\nbreak\"}\n"
            "{\"id\":2,\"price\":null,\"name\":\"é\"}\n"
            "{\"id\":3,\"price\":-2.25,\"name\":null}\n");
}

TEST(TableEncodingTest, JsonLinesWritesTypesJsonLacksAsText) {
  auto schema = arrow::schema({arrow::field("d", arrow::date32()),
                               arrow::field("b", arrow::binary()),
                               arrow::field("l", arrow::list(arrow::int32())),
                               arrow::field("s", arrow::struct_({arrow::field("x", arrow::utf8())})),
                               arrow::field("f", arrow::float64())});
  auto col = [](std::shared_ptr<arrow::DataType> t, const char* json) {
    return *arrow::json::ArrayFromJSONString(t, json);
  };
  auto batch = arrow::RecordBatch::Make(
      schema, 1,
      {col(arrow::date32(), "[19723]"), col(arrow::binary(), R"(["hi"])"),
       col(arrow::list(arrow::int32()), "[[1, null, 3]]"),
       col(schema->field(3)->type(), R"([{"x": "y"}])"), col(arrow::float64(), "[NaN]")});
  auto table = *arrow::Table::FromRecordBatches(schema, {batch});
  EXPECT_EQ(Encode(table, Encoding::kJsonLines)->ToString(),
            "{\"d\":\"2024-01-01\",\"b\":\"aGk=\",\"l\":[1,null,3],\"s\":{\"x\":\"y\"},"
            "\"f\":null}\n");
}

TEST(TableEncodingTest, NamesAndContentTypes) {
  ASSERT_OK_AND_ASSIGN(auto e, EncodingFromName("Parquet"));
  EXPECT_EQ(e, Encoding::kParquet);
  EXPECT_EQ(ContentType(e), "application/vnd.apache.parquet");
  EXPECT_EQ(ContentType(Encoding::kArrowStream), "application/vnd.apache.arrow.stream");
  EXPECT_EQ(ContentType(Encoding::kCsv), "text/csv");
  auto bad = EncodingFromName("xlsx");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'xlsx'"), std::string::npos);
  EXPECT_NE(bad.status().message().find("arrow, arrow-file, parquet, csv, jsonl"),
            std::string::npos);
}

TEST(TableEncodingTest, AcceptHeaderNegotiation) {
  auto pick = [](const char* accept) {
    auto e = EncodingFromAccept(accept);
    EXPECT_TRUE(e.ok()) << accept << ": " << e.status().ToString();
    return e.ValueOr(Encoding::kArrowStream);
  };
  EXPECT_EQ(pick(""), Encoding::kArrowStream);
  EXPECT_EQ(pick("*/*"), Encoding::kArrowStream);
  EXPECT_EQ(pick("text/csv"), Encoding::kCsv);
  EXPECT_EQ(pick("text/html, text/*;q=0.5"), Encoding::kCsv);
  EXPECT_EQ(pick("text/csv;q=0.4, application/vnd.apache.parquet;q=0.9"), Encoding::kParquet);
  EXPECT_EQ(pick("application/x-ndjson, text/csv"), Encoding::kJsonLines);  // first of equals
  EXPECT_EQ(pick("Application/VND.Apache.Arrow.File"), Encoding::kArrowFile);
  EXPECT_EQ(pick("text/csv;charset=utf-8;q=1, */*;q=0.1"), Encoding::kCsv);
  EXPECT_EQ(pick("application/json, */*;q=0.2"), Encoding::kArrowStream);
  auto none = EncodingFromAccept("application/json, text/csv;q=0");
  ASSERT_FALSE(none.ok());
  EXPECT_TRUE(IsNotAcceptable(none.status()));
  EXPECT_NE(none.status().message().find("application/json"), std::string::npos);
  auto bad_q = EncodingFromAccept("text/csv;q=2");
  ASSERT_FALSE(bad_q.ok());
  EXPECT_FALSE(IsNotAcceptable(bad_q.status()));
  EXPECT_NE(bad_q.status().message().find("q-value"), std::string::npos);
}

TEST(TableEncodingTest, CsvRefusesNestedTypesNamingTheEncoding) {
  auto schema = arrow::schema({arrow::field("l", arrow::list(arrow::int32()))});
  auto batch = arrow::RecordBatch::Make(
      schema, 1, {*arrow::json::ArrayFromJSONString(arrow::list(arrow::int32()), "[[1]]")});
  auto reader = std::make_shared<arrow::TableBatchReader>(
      *arrow::Table::FromRecordBatches(schema, {batch}));
  auto sink = *arrow::io::BufferOutputStream::Create();
  auto st = EncodeStream(reader.get(), Encoding::kCsv, sink.get());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("encoding as csv"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace quiver
