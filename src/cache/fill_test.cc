#include "cache/fill.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/api.h>

#include "cache/entry_writer.h"
#include "cache/fill_pump.h"
#include "common/testing.h"
#include "storage/local_blob_store.h"

namespace quiver {
namespace {

using testing_util::Eventually;

arrow::ipc::IpcPayload Payload(int tag) {
  arrow::ipc::IpcPayload p;
  p.type = arrow::ipc::MessageType::RECORD_BATCH;
  p.metadata = arrow::Buffer::FromString(std::to_string(tag));
  return p;
}

int Tag(const arrow::ipc::IpcPayload& p) { return std::stoi(p.metadata->ToString()); }

TEST(Fill, LateJoinerReadsFromTheFirstPayloadLive) {
  Fill fill("k", /*joinable=*/true);
  auto first = *fill.Attach();
  fill.SetSchema(arrow::schema({}), Payload(-1));
  fill.Append(Payload(0));
  fill.Append(Payload(1));
  auto late = *fill.Attach();
  std::vector<int> seen;
  std::thread reader([&] {
    while (true) {
      auto next = fill.WaitNext(late);
      ASSERT_TRUE(next.ok());
      if (!*next) break;
      seen.push_back(Tag(**next));
    }
  });
  fill.Append(Payload(2));
  fill.Finish(arrow::Status::OK());
  reader.join();
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2}));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Tag(**fill.WaitNext(first)), i);
  EXPECT_FALSE(fill.WaitNext(first)->has_value());
}

arrow::ipc::IpcPayload Sized(int tag, int64_t bytes) {
  auto p = Payload(tag);
  p.body_length = bytes;
  return p;
}

TEST(Fill, InMemoryKeepsAtMostItsLimitForLateJoinersThenStopsAcceptingThem) {
  Fill fill("k", /*joinable=*/true, /*max_kept_bytes=*/2 * 1024);
  fill.NotCaching("the index is unavailable");
  auto reader = *fill.Attach();
  fill.SetSchema(arrow::schema({}), Payload(-1));
  fill.Append(Sized(0, 1000));
  fill.Append(Sized(1, 1000));
  EXPECT_TRUE(fill.joinable()) << "not cached, but still shared within the limit";
  auto joiner = fill.Attach();
  ASSERT_TRUE(joiner.has_value());
  fill.Detach(*joiner);
  // Past 2 KiB: no more joiners. The reader attached still gets everything -- reading, as
  // the producer now waits for it to catch up.
  std::vector<int> seen;
  std::thread read([&] {
    for (int i = 0; i < 3; ++i) seen.push_back(Tag(**fill.WaitNext(reader)));
  });
  fill.Append(Sized(2, 1000));
  EXPECT_FALSE(fill.joinable());
  EXPECT_FALSE(fill.Attach().has_value());
  read.join();
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(fill.not_cached_reason(), "the index is unavailable") << "the first reason stays";
  EXPECT_EQ(fill.kept_bytes(), 0) << "payloads every reader consumed are dropped";
}

TEST(Fill, InMemoryTheProducerWaitsForTheSlowestReader) {
  Fill fill("k", /*joinable=*/false, /*max_kept_bytes=*/2500);
  auto slow = *fill.Attach();
  fill.SetSchema(arrow::schema({}), Payload(-1));
  std::thread producer([&] {
    for (int i = 0; i < 10; ++i) fill.Append(Sized(i, 1000));
    fill.Finish(arrow::Status::OK());
  });
  // Three payloads take the reader past the bound: the producer waits there.
  ASSERT_TRUE(Eventually([&] { return fill.appended() >= 3; }));
  for (int i = 0; i < 10; ++i) {
    EXPECT_LE(fill.kept_bytes(), 2500 + 1000) << "the producer ran ahead of the reader";
    EXPECT_LE(fill.appended(), i + 3);
    auto next = fill.WaitNext(slow);
    ASSERT_TRUE(next.ok() && next->has_value());
    EXPECT_EQ(Tag(**next), i);
  }
  EXPECT_FALSE(fill.WaitNext(slow)->has_value());
  producer.join();
}

TEST(Fill, ErrorReachesEveryReader) {
  Fill fill("k", true);
  auto a = *fill.Attach();
  auto b = *fill.Attach();
  fill.Append(Payload(0));
  fill.Finish(arrow::Status::IOError("source died"));
  EXPECT_EQ(Tag(**fill.WaitNext(a)), 0);
  EXPECT_TRUE(fill.WaitNext(a).status().IsIOError());
  EXPECT_EQ(Tag(**fill.WaitNext(b)), 0);
  EXPECT_TRUE(fill.WaitNext(b).status().IsIOError());
  EXPECT_TRUE(fill.WaitSchema().status().IsIOError());
  EXPECT_FALSE(fill.Attach().has_value()) << "a failed fill must not be joined";
}

TEST(Fill, StopCachingRefusesJoinersAndFreesConsumedPayloads) {
  Fill fill("k", true);
  auto a = *fill.Attach();
  fill.Append(Payload(0));
  fill.Append(Payload(1));
  fill.StopCaching("too big");
  EXPECT_FALSE(fill.joinable());
  EXPECT_EQ(fill.not_cached_reason(), "too big");
  EXPECT_FALSE(fill.Attach().has_value());
  EXPECT_EQ(Tag(**fill.WaitNext(a)), 0);
  EXPECT_EQ(Tag(**fill.WaitNext(a)), 1);
  EXPECT_EQ(fill.kept_bytes(), 0);
}

TEST(Fill, AbandonedOnlyAfterEveryReaderLeft) {
  Fill fill("k", true);
  EXPECT_FALSE(fill.Abandoned());
  auto a = *fill.Attach();
  auto b = *fill.Attach();
  fill.Detach(a);
  EXPECT_FALSE(fill.Abandoned());
  fill.Detach(b);
  EXPECT_TRUE(fill.Abandoned());
  fill.Finish(arrow::Status::OK());
  EXPECT_FALSE(fill.Abandoned());
}

TEST(Fill, AHandOverIsNotAbandonmentUntilTheNextReaderLeaves) {
  Fill fill("k", true);
  auto info = *fill.Attach();  // GetFlightInfo waits for the schema...
  fill.HandOver(info);         // ...and leaves the stream to the DoGet that follows
  EXPECT_FALSE(fill.Abandoned());
  auto get = *fill.Attach();
  EXPECT_FALSE(fill.Abandoned());
  fill.Detach(get);
  EXPECT_TRUE(fill.Abandoned());

  Fill too_big("k2", true);
  too_big.HandOver(*too_big.Attach());
  too_big.StopCaching("larger than max_entry_bytes");  // the DoGet cannot join any more
  EXPECT_TRUE(too_big.Abandoned());
}

// --- a fill whose result is written to a local file, as a query fill writes its entry ---

// A query's stream of `total` batches of one int64 column; batch i holds `rows` copies of i.
// Batches come out as the test allows them, and batch `fail_at` fails.
class GatedStream final : public QueryStream {
 public:
  GatedStream(int total, int64_t rows, int fail_at = -1)
      : total_(total), rows_(rows), fail_at_(fail_at) {}
  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Next() override {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return next_ < allowed_ || cancelled_; });
    if (cancelled_) return arrow::Status::Cancelled("cancelled");
    if (next_ == fail_at_) return arrow::Status::IOError("the database went away");
    if (next_ == total_) return nullptr;
    arrow::Int64Builder values;
    ARROW_RETURN_NOT_OK(values.AppendValues(std::vector<int64_t>(rows_, next_++)));
    ARROW_ASSIGN_OR_RAISE(auto column, values.Finish());
    return arrow::RecordBatch::Make(schema_, rows_, {column});
  }
  void Cancel() override {
    std::lock_guard<std::mutex> lock(mutex_);
    cancelled_ = true;
    cv_.notify_all();
  }
  /// Let `n` more batches (or the end) out.
  void Allow(int n) {
    std::lock_guard<std::mutex> lock(mutex_);
    allowed_ += n;
    cv_.notify_all();
  }

 private:
  const std::shared_ptr<arrow::Schema> schema_ =
      arrow::schema({arrow::field("v", arrow::int64())});
  const int total_;
  const int64_t rows_;
  const int fail_at_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int next_ = 0;
  int allowed_ = 0;
  bool cancelled_ = false;
};

// Runs a stream into a fill and a new entry of a LocalBlobStore in a temp dir, as a query
// fill does (query_fill.cc): the entry is aborted before the fill ends with an error.
class FileFillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quiver-fill-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    auto store = LocalBlobStore::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *store;
  }
  void TearDown() override {
    if (pump_.joinable()) {  // a test that failed half-way: end its fill
      stream_->Cancel();
      fill_->Finish(arrow::Status::Cancelled("the test ended"));
      pump_.join();
    }
    std::filesystem::remove_all(dir_);
  }
  Fill& NewFill(int64_t max_kept_bytes = Fill::kDefaultMaxKeptBytes) {
    return fill_.emplace("k", /*joinable=*/true, max_kept_bytes);
  }
  GatedStream& NewStream(int total, int64_t rows, int fail_at = -1) {
    return stream_.emplace(total, rows, fail_at);
  }
  void Start(Fill* fill, GatedStream* stream, int64_t max_entry_bytes = int64_t{1} << 30) {
    auto blob = store_->OpenWriter("data/entry");
    ASSERT_TRUE(blob.ok()) << blob.status();
    entry_ = std::make_unique<EntryWriter>("k", "node", std::move(*blob), max_entry_bytes,
                                           "max_entry_bytes");
    pump_ = std::thread([this, fill, stream] {
      auto pumped = PumpStream(stream, fill, entry_.get(), [](bool) { return ""; });
      entry_failed_ = pumped.entry_failed;
      if (!pumped.status.ok()) {
        entry_->Abort();
        fill->Finish(pumped.status);
        return;
      }
      fill->Finish(arrow::Status::OK());
      if (!pumped.entry_failed) committed_ = entry_->Finish().status();
    });
  }
  size_t TempFiles() const {
    size_t n = 0;
    for (auto& e : std::filesystem::directory_iterator(dir_ + "/.tmp")) (void)e, ++n;
    return n;
  }

  std::string dir_;
  std::shared_ptr<LocalBlobStore> store_;
  std::unique_ptr<EntryWriter> entry_;
  std::thread pump_;
  std::optional<Fill> fill_;
  std::optional<GatedStream> stream_;
  bool entry_failed_ = false;
  arrow::Status committed_ = arrow::Status::Invalid("not committed");
};

// Decodes a reader's payload (from the file or from memory) into the value of its batch.
arrow::Result<int64_t> ValueOf(const arrow::ipc::IpcPayload& schema,
                               const arrow::ipc::IpcPayload& payload) {
  ARROW_ASSIGN_OR_RAISE(auto sink, arrow::io::BufferOutputStream::Create());
  ARROW_ASSIGN_OR_RAISE(auto out, arrow::ipc::internal::MakePayloadStreamWriter(sink.get()));
  ARROW_RETURN_NOT_OK(out->WritePayload(schema));
  ARROW_RETURN_NOT_OK(out->WritePayload(payload));
  ARROW_RETURN_NOT_OK(out->Close());
  ARROW_ASSIGN_OR_RAISE(auto bytes, sink->Finish());
  ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchStreamReader::Open(
                                         std::make_shared<arrow::io::BufferReader>(bytes)));
  ARROW_ASSIGN_OR_RAISE(auto batch, reader->Next());
  if (!batch || batch->num_rows() == 0) return arrow::Status::Invalid("no rows");
  return std::static_pointer_cast<arrow::Int64Array>(batch->column(0))->Value(0);
}

// Reads `reader` to its end: the value of each batch, or the fill's error.
arrow::Result<std::vector<int64_t>> ReadValues(Fill* fill, int reader, int64_t limit = -1) {
  ARROW_ASSIGN_OR_RAISE(auto schema, fill->WaitSchema());
  std::vector<int64_t> values;
  while (limit < 0 || static_cast<int64_t>(values.size()) < limit) {
    ARROW_ASSIGN_OR_RAISE(auto next, fill->WaitNext(reader));
    if (!next) break;
    ARROW_ASSIGN_OR_RAISE(auto value, ValueOf(schema.second, *next));
    values.push_back(value);
  }
  return values;
}

std::vector<int64_t> Iota(int n) {
  std::vector<int64_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  return v;
}

TEST_F(FileFillTest, ALateJoinerReadsEveryMessageFromTheFileAndTheFillHoldsNone) {
  Fill& fill = NewFill(/*max_kept_bytes=*/1024);
  GatedStream& stream = NewStream(/*total=*/20, /*rows=*/1000);  // 8 KB a batch: past 1 KiB
  auto first = *fill.Attach();
  Start(&fill, &stream);
  stream.Allow(8);
  ASSERT_TRUE(Eventually([&] { return fill.appended() == 8; }));
  EXPECT_TRUE(fill.reading_file());
  EXPECT_EQ(fill.kept_bytes(), 0) << "the messages are in the file, not in memory";
  EXPECT_TRUE(fill.joinable()) << "a fill read from its file takes joiners whatever its size";
  auto late = fill.Attach();
  ASSERT_TRUE(late.has_value());
  // The late joiner catches up from the file, then reads live.
  ASSERT_OK_AND_ASSIGN(auto caught_up, ReadValues(&fill, *late, 8));
  EXPECT_EQ(caught_up, Iota(8));
  std::vector<int64_t> rest;
  std::thread reader([&] { rest = *ReadValues(&fill, *late); });
  stream.Allow(13);  // the other 12 batches and the end
  reader.join();
  caught_up.insert(caught_up.end(), rest.begin(), rest.end());
  EXPECT_EQ(caught_up, Iota(20));
  ASSERT_OK_AND_ASSIGN(auto all, ReadValues(&fill, first));
  EXPECT_EQ(all, Iota(20));
  pump_.join();
  ASSERT_OK(committed_);
  EXPECT_EQ(fill.kept_bytes(), 0);
  // Joining after the commit (the rename) still reads the file.
  auto after = fill.Attach();
  ASSERT_TRUE(after.has_value());
  ASSERT_OK_AND_ASSIGN(all, ReadValues(&fill, *after));
  EXPECT_EQ(all, Iota(20));
}

TEST_F(FileFillTest, ASlowReaderOfTheFileDoesNotHoldTheProducerBack) {
  Fill& fill = NewFill(/*max_kept_bytes=*/1024);
  GatedStream& stream = NewStream(/*total=*/50, /*rows=*/1000);
  auto slow = *fill.Attach();
  auto fast = *fill.Attach();
  Start(&fill, &stream);
  stream.Allow(51);
  // The producer gets to the end (and commits) while the slow reader has read nothing.
  ASSERT_OK_AND_ASSIGN(auto values, ReadValues(&fill, fast));
  EXPECT_EQ(values, Iota(50));
  pump_.join();
  ASSERT_OK(committed_);
  EXPECT_TRUE(fill.finished());
  EXPECT_EQ(fill.kept_bytes(), 0);
  ASSERT_OK_AND_ASSIGN(values, ReadValues(&fill, slow));
  EXPECT_EQ(values, Iota(50));
}

TEST_F(FileFillTest, AFailureMidWayReachesEveryReaderAndRemovesTheTempFile) {
  Fill& fill = NewFill();
  GatedStream& stream = NewStream(/*total=*/10, /*rows=*/1000, /*fail_at=*/6);
  auto ahead = *fill.Attach();
  auto behind = *fill.Attach();
  Start(&fill, &stream);
  stream.Allow(3);
  ASSERT_OK_AND_ASSIGN(auto read, ReadValues(&fill, ahead, 3));
  EXPECT_EQ(read, Iota(3));
  EXPECT_EQ(TempFiles(), 1u);
  stream.Allow(10);
  auto a = ReadValues(&fill, ahead);
  auto b = ReadValues(&fill, behind);
  pump_.join();
  ASSERT_FALSE(a.ok());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(a.status().ToString(), b.status().ToString());
  EXPECT_NE(a.status().message().find("the database went away"), std::string::npos)
      << a.status();
  EXPECT_EQ(TempFiles(), 0u) << "the temp file must go";
  EXPECT_FALSE(fill.Attach().has_value());
}

TEST_F(FileFillTest, AResultPastMaxEntryBytesKeepsStreamingToTheReadersAttachedThen) {
  Fill& fill = NewFill(/*max_kept_bytes=*/32 * 1024);
  GatedStream& stream = NewStream(/*total=*/40, /*rows=*/1000);  // about 8 KB a message
  auto early = *fill.Attach();
  Start(&fill, &stream, /*max_entry_bytes=*/5 * 8 * 1024);
  stream.Allow(3);
  ASSERT_TRUE(Eventually([&] { return fill.appended() == 3; }));
  auto late = fill.Attach();  // joins while the result is still being written
  ASSERT_TRUE(late.has_value());
  std::vector<int64_t> early_values, late_values;
  int64_t most_kept = 0;
  std::thread early_reader([&] {
    auto v = ReadValues(&fill, early);
    ASSERT_TRUE(v.ok()) << v.status();
    early_values = *v;
  });
  std::thread late_reader([&] {
    // Slowly: after each message, note what the fill holds in memory.
    auto schema = *fill.WaitSchema();
    while (true) {
      auto next = fill.WaitNext(*late);
      ASSERT_TRUE(next.ok()) << next.status();
      if (!*next) break;
      late_values.push_back(*ValueOf(schema.second, **next));
      most_kept = std::max(most_kept, fill.kept_bytes());
      std::this_thread::yield();
    }
  });
  stream.Allow(38);
  early_reader.join();
  late_reader.join();
  pump_.join();
  EXPECT_TRUE(entry_failed_);
  EXPECT_EQ(early_values, Iota(40));
  EXPECT_EQ(late_values, Iota(40));
  EXPECT_EQ(fill.not_cached_reason(), kTooLargeToCache);
  EXPECT_FALSE(fill.joinable());
  EXPECT_FALSE(fill.Attach().has_value()) << "the start of the result is not kept for joiners";
  EXPECT_LE(most_kept, 32 * 1024 + 9 * 1024) << "the tail in memory is bounded";
  EXPECT_EQ(fill.kept_bytes(), 0);
  EXPECT_EQ(TempFiles(), 0u) << "the oversized entry's temp file must go";
}

}  // namespace
}  // namespace quiver
