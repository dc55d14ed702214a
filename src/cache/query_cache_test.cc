// QueryCache against the real SQLite ADBC driver and an in-memory blob store.
#include "cache/query_cache.h"

#include "cache/engine_test_util.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
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
    // The same database, serving stale results for 10 s (requests may ask up to 60 s);
    // and one refreshing early (XFetch) without a stale window.
    spec.name = "swr";
    spec.stale_while_revalidate_s = 10;
    spec.max_stale_while_revalidate_s = 60;
    spec.early_refresh_beta = 0;
    ASSERT_OK_AND_ASSIGN(swr_source_, OpenAdbcSource(spec));
    spec.name = "xf";
    spec.stale_while_revalidate_s = 0;
    spec.max_stale_while_revalidate_s.reset();
    spec.early_refresh_beta = 1.0;
    ASSERT_OK_AND_ASSIGN(xf_source_, OpenAdbcSource(spec));
    Run("CREATE TABLE t (id INTEGER, grp TEXT)");
    Run("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
        "INSERT INTO t SELECT i, 'g' || (i % 7) FROM n");
    Open();
  }
  void TearDown() override {
    engine_.reset();
    source_.reset();
    swr_source_.reset();
    xf_source_.reset();
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
    o.sources = {{"lite", source_}, {"swr", swr_source_}, {"xf", xf_source_}};
    o.max_entry_bytes = max_entry_bytes;
    o.random = [this] { return draw_.load(); };
    EngineTest::Open(std::move(o), std::make_shared<MemoryBlobStore>());
    queries_ = engine_->queries();
  }
  QueryResponse Ask(const std::string& sql, const std::string& params = "[]",
                    std::optional<double> ttl = std::nullopt, bool preview = false,
                    const std::string& source = "lite",
                    std::optional<double> stale = std::nullopt) {
    QueryRequest req;
    req.source = source;
    req.stale_while_revalidate_s = stale;
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
  std::shared_ptr<Source> source_, swr_source_, xf_source_;
  QueryCache* queries_ = nullptr;
  /// XFetch's draw: 1.0 never refreshes early (ln 1 = 0); a tiny one always does.
  std::atomic<double> draw_{1.0};
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

// --- Freshness: stale-while-revalidate and early refresh (query_refresh.cc) ---

// Takes long enough (tens of ms) that its recorded cost is > 0 and refreshes overlap reads.
constexpr const char* kSlow =
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) "
    "SELECT count(*) AS c, sum(i) AS s FROM n";

TEST_F(QueryCacheTest, StaleServedWithinWindowWhileOneRefreshRuns) {
  auto miss = Ask(kSlow, "[]", 2.0, false, "swr");
  ASSERT_OK_AND_ASSIGN(auto first, ReadAll(miss));
  AwaitIdle();
  const int64_t old_created = Ask(kSlow, "[]", 2.0, false, "swr").created_ms;
  clock_->Advance(2500);  // expired 0.5 s ago; the window is 10 s
  std::vector<std::thread> threads;
  std::vector<QueryResponse> responses(16);
  std::vector<std::shared_ptr<arrow::Table>> tables(16);
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      responses[i] = Ask(kSlow, "[]", 2.0, false, "swr");
      auto t = ReadAll(responses[i]);
      ASSERT_TRUE(t.ok()) << t.status();
      tables[i] = *t;
    });
  }
  for (auto& t : threads) t.join();
  int stale = 0;
  for (int i = 0; i < 16; ++i) {
    ASSERT_EQ(responses[i].kind, QueryResponse::Kind::kHit) << "request " << i << " waited";
    EXPECT_TRUE(tables[i]->Equals(*first));
    if (responses[i].stale) {
      ++stale;
      EXPECT_TRUE(responses[i].refreshing);
      EXPECT_EQ(responses[i].created_ms, old_created);
    } else {  // the refresh published before this request: its new result
      EXPECT_GT(responses[i].created_ms, old_created);
    }
  }
  EXPECT_GE(stale, 1);
  AwaitIdle();
  const auto stats = queries_->Stats();
  EXPECT_EQ(stats.refreshes, 1) << "one refresh for all the stale reads";
  EXPECT_EQ(stats.early_refreshes, 0);
  EXPECT_EQ(stats.executions, 2);
  EXPECT_EQ(stats.stale_hits, stale);
  auto fresh = Ask(kSlow, "[]", 2.0, false, "swr");
  EXPECT_EQ(fresh.kind, QueryResponse::Kind::kHit);
  EXPECT_FALSE(fresh.stale);
  EXPECT_FALSE(fresh.refreshing);
  EXPECT_EQ(fresh.created_ms, clock_->NowMillis());
  EXPECT_EQ(fresh.expires_ms, clock_->NowMillis() + 2000);
}

TEST_F(QueryCacheTest, AfterTheWindowAMissAndReclaimKeepsTheWindow) {
  ASSERT_OK(ReadAll(*std::make_unique<QueryResponse>(Ask(kAgg, "[]", 2.0, false, "swr")))
                .status());
  AwaitIdle();
  // Expired 8 s ago: inside the source's 10 s window, and kept by the reclaimer until the
  // 60 s a request may ask for.
  clock_->Advance(10'000);
  ASSERT_OK_AND_ASSIGN(auto reclaimed, queries_->ReclaimExpired());
  EXPECT_EQ(reclaimed, 0);
  // A request lowering the window to 0 misses it (and joins nothing: no refresh runs).
  auto strict = Ask(kAgg, "[]", 2.0, false, "swr", 0.0);
  EXPECT_EQ(strict.kind, QueryResponse::Kind::kMiss);
  EXPECT_FALSE(strict.joined);
  ASSERT_OK(ReadAll(strict).status());
  AwaitIdle();
  clock_->Advance(2000 + 10'000 + 1);  // the refill's window has passed too
  auto late = Ask(kAgg, "[]", 2.0, false, "swr");
  EXPECT_EQ(late.kind, QueryResponse::Kind::kMiss);
  EXPECT_FALSE(late.stale);
  ASSERT_OK(ReadAll(late).status());
  AwaitIdle();
  // A request may raise the window up to the cap (60 s), not beyond.
  clock_->Advance(2000 + 40'000);
  auto raised = Ask(kAgg, "[]", 2.0, false, "swr", 45.0);
  EXPECT_EQ(raised.kind, QueryResponse::Kind::kHit);
  EXPECT_TRUE(raised.stale);
  AwaitIdle();
  clock_->Advance(2000 + 61'000);
  auto capped = Ask(kAgg, "[]", 2.0, false, "swr", 1000.0);
  EXPECT_EQ(capped.kind, QueryResponse::Kind::kMiss);
  ASSERT_OK(ReadAll(capped).status());
  AwaitIdle();
  clock_->Advance(2000 + 60'000);
  ASSERT_OK_AND_ASSIGN(reclaimed, queries_->ReclaimExpired());
  EXPECT_EQ(reclaimed, 1);
  EXPECT_EQ(engine_->management()->Stats()->index.keys, 0);
}

TEST_F(QueryCacheTest, FailedRefreshKeepsServingStale) {
  Run("CREATE TABLE u (v INTEGER)");
  Run("INSERT INTO u VALUES (1), (2), (3)");
  const char* sql = "SELECT sum(v) AS s FROM u";
  ASSERT_OK_AND_ASSIGN(auto first, ReadAll(*std::make_unique<QueryResponse>(
                                       Ask(sql, "[]", 2.0, false, "swr"))));
  AwaitIdle();
  Run("DROP TABLE u");  // every execution fails from now on
  clock_->Advance(2500);
  for (int round = 1; round <= 2; ++round) {
    auto stale = Ask(sql, "[]", 2.0, false, "swr");
    ASSERT_EQ(stale.kind, QueryResponse::Kind::kHit) << "round " << round;
    EXPECT_TRUE(stale.stale);
    ASSERT_OK_AND_ASSIGN(auto table, ReadAll(stale));
    EXPECT_TRUE(table->Equals(*first));
    AwaitIdle();  // the refresh failed
    EXPECT_EQ(queries_->Stats().failures, round);
    EXPECT_EQ(queries_->Stats().refreshes, round);
    clock_->Advance(4000);
  }
  // Past the window (expired 8.5 s ago, now 10.5 s): a miss, which fails like the
  // refreshes did.
  clock_->Advance(2000);
  auto miss = Ask(sql, "[]", 2.0, false, "swr");
  EXPECT_EQ(miss.kind, QueryResponse::Kind::kMiss);
  EXPECT_FALSE(ReadAll(miss).ok());
}

TEST_F(QueryCacheTest, EarlyRefreshServesTheFreshHitAndRefreshesOnce) {
  ASSERT_OK(ReadAll(*std::make_unique<QueryResponse>(Ask(kSlow, "[]", 60.0, false, "xf")))
                .status());
  AwaitIdle();
  auto hit = Ask(kSlow, "[]", 60.0, false, "xf");
  ASSERT_GE(hit.exec_ms, 15) << "the draw below needs a cost of at least 15 ms";
  const int64_t old_created = hit.created_ms;
  EXPECT_FALSE(hit.refreshing) << "a draw of 1.0 never refreshes early";
  // 0.5 s before expiry, a draw that looks 10 s ahead picks every hit; the refreshed
  // result (60 s left) is not picked again.
  clock_->Advance(59'500);
  draw_ = std::exp(-10'000.0 / static_cast<double>(hit.exec_ms));
  std::vector<std::thread> threads;
  std::vector<QueryResponse> responses(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      responses[i] = Ask(kSlow, "[]", 60.0, false, "xf");
      ASSERT_TRUE(ReadAll(responses[i]).ok());
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : responses) {
    EXPECT_EQ(r.kind, QueryResponse::Kind::kHit);
    EXPECT_FALSE(r.stale);
  }
  EXPECT_TRUE(responses[0].refreshing || responses[0].created_ms > old_created);
  draw_ = 1.0;
  AwaitIdle();
  const auto stats = queries_->Stats();
  EXPECT_EQ(stats.early_refreshes, 1);
  EXPECT_EQ(stats.refreshes, 1);
  EXPECT_EQ(stats.executions, 2);
  auto after = Ask(kSlow, "[]", 60.0, false, "xf");
  EXPECT_EQ(after.kind, QueryResponse::Kind::kHit);
  EXPECT_EQ(after.created_ms, clock_->NowMillis()) << "the refreshed result";
  EXPECT_FALSE(after.refreshing);
}

TEST_F(QueryCacheTest, StaleWindowMustNotBeNegative) {
  QueryRequest req;
  req.source = "swr";
  req.sql = "SELECT 1";
  req.stale_while_revalidate_s = -1;
  auto plan = queries_->Plan(req);
  ASSERT_TRUE(plan.status().IsInvalid());
  EXPECT_NE(plan.status().message().find("stale_while_revalidate_s"), std::string::npos);
}

}  // namespace
}  // namespace quiver
