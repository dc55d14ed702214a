#include "cache/derived_cache.h"

#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>

#include "cache/engine_test_util.h"

namespace quiver {
namespace {

class DerivedCacheTest : public EngineTest {
 protected:
  void SetUp() override { Open(); }

  arrow::Result<ViewResult> Serve(const std::string& key, ViewSpec view,
                                  Encoding encoding = Encoding::kArrowStream) {
    ViewRequest request;
    request.key = key;
    request.view = std::move(view);
    request.encoding = encoding;
    return engine_->views()->Serve(request);
  }

  static std::shared_ptr<arrow::Table> ReadTable(const OpenEntry& entry) {
    auto size = *entry.file->GetSize();
    auto stream = *arrow::io::RandomAccessFile::GetStream(entry.file, 0, size);
    return *(*arrow::ipc::RecordBatchStreamReader::Open(stream))->ToTable();
  }

  bool Published(const std::string& key) {
    return engine_->entries()->Open(key, std::nullopt, false)->has_value();
  }
};

ViewSpec Limit(int64_t offset, int64_t limit) {
  ViewSpec v;
  v.offset = offset;
  v.limit = limit;
  return v;
}

TEST_F(DerivedCacheTest, DerivesOnceThenServesTheStoredEntry) {
  ASSERT_OK(Put("s/t", 100).status());
  ASSERT_OK_AND_ASSIGN(auto first, Serve("s/t", Limit(10, 5)));
  EXPECT_FALSE(first.cached_hit);
  EXPECT_TRUE(first.stored);
  EXPECT_FALSE(first.encoded);
  EXPECT_TRUE(IsDerivedEntry(first.entry.meta));
  EXPECT_EQ(first.entry.meta.depends_on, std::vector<std::string>{"s/t"});
  EXPECT_EQ(first.source.key, "s/t");
  auto table = ReadTable(first.entry);
  EXPECT_TRUE(table->Equals(*arrow::Table::FromRecordBatches({Rows(5, 10)}).ValueOrDie()));
  ASSERT_OK_AND_ASSIGN(auto second, Serve("s/t", Limit(10, 5)));
  EXPECT_TRUE(second.cached_hit);
  EXPECT_EQ(second.entry.meta.key, first.entry.meta.key);
  EXPECT_EQ(engine_->views()->Stats().hits, 1);
  EXPECT_EQ(engine_->views()->Stats().stored, 1);
}

TEST_F(DerivedCacheTest, EncodedEntriesHoldTheFileBytes) {
  ASSERT_OK(Put("s/t", 3).status());
  ASSERT_OK_AND_ASSIGN(auto csv, Serve("s/t", ViewSpec{}, Encoding::kCsv));
  EXPECT_TRUE(csv.encoded);
  ASSERT_OK_AND_ASSIGN(auto bytes, ReadEncodedBytes(csv.entry));
  EXPECT_EQ(bytes->ToString(), "\"x\"\n0\n1\n2\n");
  std::string pieces;
  ASSERT_OK(ForEachEncodedChunk(csv.entry, [&](std::shared_ptr<arrow::Buffer> piece) {
    pieces += piece->ToString();
    return arrow::Status::OK();
  }));
  EXPECT_EQ(pieces, bytes->ToString());
  ASSERT_OK_AND_ASSIGN(auto plain, Serve("s/t", Limit(0, 1)));
  EXPECT_FALSE(ReadEncodedBytes(plain.entry).ok());  // not an encoded entry
}

TEST_F(DerivedCacheTest, ANewVersionOrAnInvalidationOfTheSourceRemovesIt) {
  ASSERT_OK(Put("s/t", 100).status());
  ASSERT_OK_AND_ASSIGN(auto v1, Serve("s/t", Limit(0, 5), Encoding::kParquet));
  ASSERT_TRUE(Published(v1.entry.meta.key));
  ASSERT_OK(Put("s/t", 50).status());
  EXPECT_FALSE(Published(v1.entry.meta.key));
  ASSERT_OK_AND_ASSIGN(auto v2, Serve("s/t", Limit(0, 5), Encoding::kParquet));
  EXPECT_FALSE(v2.cached_hit);
  EXPECT_EQ(v2.source.version, 2u);
  EXPECT_NE(v2.entry.meta.key, v1.entry.meta.key);
  ASSERT_OK_AND_ASSIGN(auto removed, engine_->invalidator()->Invalidate("s/t", true));
  EXPECT_EQ(removed.size(), 2u);
  EXPECT_FALSE(Published(v2.entry.meta.key));
}

TEST_F(DerivedCacheTest, BadRequestsNameTheProblem) {
  ASSERT_OK(Put("s/t", 10).status());
  auto plain = Serve("s/t", ViewSpec{});
  EXPECT_TRUE(plain.status().IsInvalid()) << plain.status();
  ViewSpec bad;
  bad.filter = "y > 1";
  auto filter = Serve("s/t", bad);
  EXPECT_TRUE(filter.status().IsInvalid());
  EXPECT_NE(filter.status().message().find("unknown column 'y'"), std::string::npos);
  EXPECT_TRUE(Serve("s/missing", Limit(0, 1)).status().IsKeyError());
  EXPECT_TRUE(Serve(std::string(64, 'a'), Limit(0, 1)).status().IsKeyError());
  EXPECT_TRUE(Serve("not a key", Limit(0, 1)).status().IsInvalid());
  EXPECT_EQ(engine_->views()->Stats().stored, 0);
}

TEST_F(DerivedCacheTest, AViewThatDoesNotFitIsServedUncachedAndTheSourceStays) {
  EngineOptions options;
  options.budget.cache_size = 12 << 10;
  Open(options);
  ASSERT_OK(Put("s/t", 1000).status());  // about 8 KiB
  ASSERT_OK_AND_ASSIGN(auto whole, Serve("s/t", ViewSpec{}, Encoding::kArrowFile));
  EXPECT_FALSE(whole.stored);
  EXPECT_NE(whole.not_stored.find("not admitted"), std::string::npos) << whole.not_stored;
  EXPECT_TRUE(Has("s/t"));
  ASSERT_OK_AND_ASSIGN(auto bytes, ReadEncodedBytes(whole.entry));
  EXPECT_GT(bytes->size(), 8000);
  EXPECT_EQ(engine_->views()->Stats().not_stored, 1);
}

}  // namespace
}  // namespace quiver
