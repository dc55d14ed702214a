#include "format/stored_stream.h"

#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/api.h>
#include "common/testing.h"
#include <gtest/gtest.h>

namespace quiver {
namespace {

std::shared_ptr<arrow::Table> MakeTable() {
  auto dict_type = arrow::dictionary(arrow::int8(), arrow::utf8());
  auto schema = arrow::schema({arrow::field("id", arrow::int64()),
                               arrow::field("name", dict_type),
                               arrow::field("tags", arrow::list(arrow::utf8()))});
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int b = 0; b < 3; ++b) {
    arrow::Int64Builder ids;
    arrow::StringDictionaryBuilder names;
    arrow::ListBuilder tags(arrow::default_memory_pool(),
                            std::make_shared<arrow::StringBuilder>());
    auto* tag_values = static_cast<arrow::StringBuilder*>(tags.value_builder());
    for (int i = 0; i < 5; ++i) {
      EXPECT_TRUE(ids.Append(b * 100 + i).ok());
      EXPECT_TRUE(names.Append(i % 2 ? "odd" : "even").ok());
      EXPECT_TRUE(tags.Append().ok());
      EXPECT_TRUE(tag_values->Append("t" + std::to_string(i)).ok());
    }
    std::shared_ptr<arrow::Array> a, n, t;
    EXPECT_TRUE(ids.Finish(&a).ok());
    EXPECT_TRUE(names.Finish(&n).ok());
    EXPECT_TRUE(tags.Finish(&t).ok());
    batches.push_back(arrow::RecordBatch::Make(schema, 5, {a, n, t}));
  }
  return *arrow::Table::FromRecordBatches(schema, batches);
}

std::shared_ptr<arrow::Buffer> EncodeStream(const arrow::Table& table) {
  auto sink = *arrow::io::BufferOutputStream::Create();
  auto writer = *arrow::ipc::MakeStreamWriter(sink, table.schema());
  arrow::TableBatchReader batches(table);
  std::shared_ptr<arrow::RecordBatch> batch;
  while (batches.ReadNext(&batch).ok() && batch) EXPECT_TRUE(writer->WriteRecordBatch(*batch).ok());
  EXPECT_TRUE(writer->Close().ok());
  return *sink->Finish();
}

TEST(StoredStream, PayloadsReassembleToTheSameTable) {
  auto table = MakeTable();
  auto encoded = EncodeStream(*table);
  ASSERT_OK_AND_ASSIGN(auto stream,
                       StoredStream::Open(std::make_shared<arrow::io::BufferReader>(encoded)));
  ASSERT_TRUE(stream->schema()->Equals(*table->schema(), /*check_metadata=*/true));

  // Re-emit the payloads byte for byte into a new stream and decode that.
  auto sink = *arrow::io::BufferOutputStream::Create();
  ASSERT_OK_AND_ASSIGN(auto out, arrow::ipc::internal::MakePayloadStreamWriter(sink.get()));
  ASSERT_OK(out->WritePayload(stream->schema_payload()));
  int record_batches = 0, dictionaries = 0;
  while (true) {
    ASSERT_OK_AND_ASSIGN(auto payload, stream->Next());
    if (!payload) break;
    if (payload->type == arrow::ipc::MessageType::RECORD_BATCH) ++record_batches;
    if (payload->type == arrow::ipc::MessageType::DICTIONARY_BATCH) ++dictionaries;
    for (const auto& body : payload->body_buffers) {
      // Zero-copy: every body buffer points into the encoded stream.
      EXPECT_GE(body->data(), encoded->data());
      EXPECT_LE(body->data() + body->size(), encoded->data() + encoded->size());
    }
    ASSERT_OK(out->WritePayload(*payload));
  }
  ASSERT_OK(out->Close());
  EXPECT_EQ(record_batches, 3);
  EXPECT_GE(dictionaries, 1);
  auto copy = *sink->Finish();
  EXPECT_TRUE(copy->Equals(*encoded)) << "pass-through changed the bytes";

  ASSERT_OK_AND_ASSIGN(auto reader, arrow::ipc::RecordBatchStreamReader::Open(
                                        std::make_shared<arrow::io::BufferReader>(copy)));
  ASSERT_OK_AND_ASSIGN(auto decoded, reader->ToTable());
  EXPECT_TRUE(decoded->Equals(*table));
}

TEST(StoredStream, RejectsTruncatedAndForeignFiles) {
  auto encoded = EncodeStream(*MakeTable());
  auto truncated = arrow::SliceBuffer(encoded, 0, encoded->size() - 50);
  ASSERT_OK_AND_ASSIGN(auto stream,
                       StoredStream::Open(std::make_shared<arrow::io::BufferReader>(truncated)));
  arrow::Status status;
  while (true) {
    auto next = stream->Next();
    if (!next.ok()) {
      status = next.status();
      break;
    }
    if (!next->has_value()) break;
  }
  EXPECT_FALSE(status.ok()) << "a truncated stream read to the end without an error";

  auto garbage = arrow::Buffer::FromString(std::string(64, 'x'));
  EXPECT_FALSE(StoredStream::Open(std::make_shared<arrow::io::BufferReader>(garbage)).ok());
  auto empty = arrow::Buffer::FromString("");
  EXPECT_FALSE(StoredStream::Open(std::make_shared<arrow::io::BufferReader>(empty)).ok());
}

}  // namespace
}  // namespace quiver
