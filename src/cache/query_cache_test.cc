// QueryCache against the real SQLite ADBC driver and an in-memory blob store.
#include "cache/query_cache.h"

#include "cache/engine_test_util.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/api.h>

#include "common/testing.h"
#include "exec/adbc_source.h"
#include "storage/memory_blob_store.h"

namespace quiver {
namespace {

// Reads a response to the end, as a Flight stream would.
arrow::Result<std::shared_ptr<arrow::Table>> ReadAll(QueryResponse& r) {
  if (r.hit) {
    ARROW_ASSIGN_OR_RAISE(auto size, r.hit->file->GetSize());
    ARROW_ASSIGN_OR_RAISE(auto in, arrow::io::RandomAccessFile::GetStream(r.hit->file, 0, size));
    ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchStreamReader::Open(in));
    return reader->ToTable();
  }
  // Reassemble the fill's payloads into a stream and decode it.
  ARROW_ASSIGN_OR_RAISE(auto sink, arrow::io::BufferOutputStream::Create());
  ARROW_ASSIGN_OR_RAISE(auto out, arrow::ipc::internal::MakePayloadStreamWriter(sink.get()));
  ARROW_ASSIGN_OR_RAISE(auto schema, r.fill->WaitSchema());
  ARROW_RETURN_NOT_OK(out->WritePayload(schema.second));
  while (true) {
    auto next = r.fill->WaitNext(r.reader);
    if (!next.ok()) {
      r.fill->Detach(r.reader);
      return next.status();
    }
    if (!*next) break;
    ARROW_RETURN_NOT_OK(out->WritePayload(**next));
  }
  r.fill->Detach(r.reader);
  ARROW_RETURN_NOT_OK(out->Close());
  ARROW_ASSIGN_OR_RAISE(auto buffer, sink->Finish());
  ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchStreamReader::Open(
                                         std::make_shared<arrow::io::BufferReader>(buffer)));
  return reader->ToTable();
}

class QueryCacheTest : public EngineTest {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quiver-query-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    SourceSpec spec;
    spec.name = "lite";
    spec.driver = "sqlite";
    spec.uri = dir_ + "/t.db";
    spec.max_concurrent = 4;
    ASSERT_OK_AND_ASSIGN(source_, OpenAdbcSource(spec));
    Run("CREATE TABLE t (id INTEGER, grp TEXT)");
    Run("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
        "INSERT INTO t SELECT i, 'g' || (i % 7) FROM n");
    Open();
  }
  void TearDown() override {
    engine_.reset();
    source_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Run(const std::string& sql) {
    auto s = source_->Execute(sql, nullptr);
    ASSERT_TRUE(s.ok()) << s.status();
    while (true) {
      auto batch = (*s)->Next();
      ASSERT_TRUE(batch.ok()) << batch.status();
      if (!*batch) break;
    }
  }
  void Open(int64_t max_entry_bytes = int64_t{1} << 30) {
    EngineOptions o;
    o.sources = {{"lite", source_}};
    o.max_entry_bytes = max_entry_bytes;
    EngineTest::Open(std::move(o), std::make_shared<MemoryBlobStore>());
    queries_ = engine_->queries();
  }
  QueryResponse Ask(const std::string& sql, const std::string& params = "[]",
                    std::optional<double> ttl = std::nullopt, bool preview = false) {
    QueryRequest req;
    req.source = "lite";
    req.sql = sql;
    req.params_json = params;
    req.ttl_s = ttl;
    req.preview = preview;
    auto plan = queries_->Plan(req);
    EXPECT_TRUE(plan.ok()) << plan.status();
    auto r = queries_->Execute(*plan);
    EXPECT_TRUE(r.ok()) << r.status();
    return std::move(*r);
  }
  // Fills finish asynchronously after the reader saw the end; wait for the commit.
  void AwaitIdle() { ASSERT_TRUE(queries_->WaitForFills(10)) << "fills still running after 10 s"; }

  std::string dir_;
  std::shared_ptr<Source> source_;
  QueryCache* queries_ = nullptr;
};

constexpr const char* kAgg = "SELECT grp, count(*) AS n, sum(id) AS s FROM t GROUP BY grp ORDER BY grp";

TEST_F(QueryCacheTest, MissThenHitWithIdenticalRows) {
  auto miss = Ask(kAgg);
  EXPECT_EQ(miss.kind, QueryResponse::Kind::kMiss);
  ASSERT_OK_AND_ASSIGN(auto first, ReadAll(miss));
  AwaitIdle();
  auto hit = Ask(kAgg);
  ASSERT_EQ(hit.kind, QueryResponse::Kind::kHit);
  EXPECT_GE(hit.exec_ms, 0);
  EXPECT_EQ(hit.expires_ms - hit.created_ms, 300'000);
  ASSERT_OK_AND_ASSIGN(auto second, ReadAll(hit));
  EXPECT_EQ(first->num_rows(), 7);
  EXPECT_TRUE(first->Equals(*second));
  EXPECT_EQ(queries_->Stats().executions, 1);
}

TEST_F(QueryCacheTest, KeyNormalizesSqlButNotParams) {
  auto a = Ask("SELECT count(*) FROM t WHERE id > ?", "[10]");
  ASSERT_OK(ReadAll(a).status());
  AwaitIdle();
  auto same = Ask("SELECT count(*)   FROM t -- comment\n WHERE id > ? ;", "[10]");
  EXPECT_EQ(same.kind, QueryResponse::Kind::kHit);
  EXPECT_EQ(same.key, a.key);
  auto other = Ask("SELECT count(*) FROM t WHERE id > ?", "[20]");
  EXPECT_EQ(other.kind, QueryResponse::Kind::kMiss);
  EXPECT_NE(other.key, a.key);
  ASSERT_OK_AND_ASSIGN(auto t20, ReadAll(other));
  auto n = std::static_pointer_cast<arrow::Int64Array>(t20->column(0)->chunk(0))->Value(0);
  EXPECT_EQ(n, 100000 - 20);
  auto text = Ask("SELECT count(*) FROM t WHERE id > ?", "[\"10\"]");
  EXPECT_NE(text.key, a.key) << "a string parameter is not the integer 10";
  ASSERT_OK(ReadAll(text).status());
}

TEST_F(QueryCacheTest, ExpiredEntriesAreNeverServedAndGetReclaimed) {
  ASSERT_OK(ReadAll(*std::make_unique<QueryResponse>(Ask(kAgg, "[]", 2.0))).status());
  AwaitIdle();
  EXPECT_EQ(Ask(kAgg, "[]", 2.0).kind, QueryResponse::Kind::kHit);
  clock_->Advance(2001);
  ASSERT_OK_AND_ASSIGN(auto reclaimed, queries_->ReclaimExpired());
  EXPECT_EQ(reclaimed, 1);
  EXPECT_EQ(engine_->management()->Stats()->index.keys, 0);
  auto again = Ask(kAgg, "[]", 2.0);
  EXPECT_EQ(again.kind, QueryResponse::Kind::kMiss);
  ASSERT_OK(ReadAll(again).status());
}

TEST_F(QueryCacheTest, PreviewAndNondeterministicBypass) {
  auto preview = Ask(kAgg, "[]", std::nullopt, /*preview=*/true);
  EXPECT_EQ(preview.kind, QueryResponse::Kind::kBypass);
  EXPECT_EQ(preview.reason, "preview");
  ASSERT_OK(ReadAll(preview).status());
  auto random = Ask("SELECT id, random() AS r FROM t LIMIT 3");
  EXPECT_EQ(random.kind, QueryResponse::Kind::kBypass);
  EXPECT_NE(random.reason.find("random()"), std::string::npos);
  ASSERT_OK(ReadAll(random).status());
  AwaitIdle();
  EXPECT_EQ(engine_->management()->Stats()->index.keys, 0) << "a bypass was stored";
  EXPECT_EQ(Ask(kAgg).kind, QueryResponse::Kind::kMiss) << "the preview filled the cache";
}

TEST_F(QueryCacheTest, OversizedResultStreamsButIsNotCached) {
  Open(/*max_entry_bytes=*/4096);
  auto big = Ask("SELECT id, grp FROM t");
  ASSERT_OK_AND_ASSIGN(auto table, ReadAll(big));
  EXPECT_EQ(table->num_rows(), 100000);
  EXPECT_NE(big.fill->not_cached_reason().find("max_entry_bytes"), std::string::npos);
  AwaitIdle();
  EXPECT_EQ(engine_->management()->Stats()->index.keys, 0);
  EXPECT_EQ(Ask("SELECT id, grp FROM t").kind, QueryResponse::Kind::kMiss);
}

TEST_F(QueryCacheTest, FailureMidStreamReachesReadersAndIsNotCached) {
  // abs(-9223372036854775808) overflows at run time, after 70000 good rows.
  const char* failing =
      "SELECT id, CASE WHEN id > 70000 THEN abs(-9223372036854775807 - 1) ELSE id END AS v "
      "FROM t ORDER BY id";
  auto a = Ask(failing);
  auto b = Ask(failing);
  EXPECT_TRUE(b.joined);
  auto ra = ReadAll(a);
  auto rb = ReadAll(b);
  EXPECT_FALSE(ra.ok());
  EXPECT_FALSE(rb.ok());
  EXPECT_NE(ra.status().message().find("overflow"), std::string::npos) << ra.status();
  AwaitIdle();
  EXPECT_EQ(engine_->management()->Stats()->index.keys, 0);
  auto again = Ask(failing);
  EXPECT_EQ(again.kind, QueryResponse::Kind::kMiss);
  EXPECT_FALSE(again.joined);
  EXPECT_FALSE(ReadAll(again).ok());
  EXPECT_EQ(queries_->Stats().executions, 2);
}

TEST_F(QueryCacheTest, ConcurrentIdenticalRequestsExecuteOnce) {
  const char* slow =
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400000) "
      "SELECT count(*) AS c, sum(i) AS s FROM n";
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<arrow::Table>> results(16);
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      auto r = Ask(slow);
      auto t = ReadAll(r);
      ASSERT_TRUE(t.ok()) << t.status();
      results[i] = *t;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(queries_->Stats().executions, 1);
  for (auto& r : results) EXPECT_TRUE(r->Equals(*results[0]));
}

TEST_F(QueryCacheTest, UnknownSourceAndBadParamsAreRefused) {
  QueryRequest req;
  req.source = "nope";
  req.sql = "SELECT 1";
  auto plan = queries_->Plan(req);
  ASSERT_TRUE(plan.status().IsInvalid());
  EXPECT_NE(plan.status().message().find("lite"), std::string::npos) << plan.status();
  req.source = "lite";
  req.params_json = "[[1]]";
  EXPECT_TRUE(queries_->Plan(req).status().IsInvalid());
  req.params_json = "[]";
  req.ttl_s = -1;
  EXPECT_TRUE(queries_->Plan(req).status().IsInvalid());
}

}  // namespace
}  // namespace quiver
