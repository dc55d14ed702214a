// Budgets, the memory tier, dependencies and invalidation in the engine.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <thread>

#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/writer.h>

#include "cache/engine_test_util.h"
#include "cache/usage_snapshot.h"
#include "common/testing.h"
#include "index/embedded_index.h"
#include "storage/local_blob_store.h"
#include "storage/memory_blob_store.h"

namespace quiver {
namespace {

using ManagementTest = EngineTest;

TEST_F(ManagementTest, BudgetEvictsTheLowestScoreBeforeCommitting) {
  EngineOptions o;
  o.budget.cache_size = 3 * 9000;  // about three 1000-row entries
  o.budget.policy = "lru";
  Open(o);
  ASSERT_OK(Put("s/a", 1000).status());
  ASSERT_OK(Put("s/b", 1000).status());
  ASSERT_OK(Put("s/c", 1000).status());
  Read("s/a");  // a is now more recent than b
  ASSERT_OK(Put("s/d", 1000).status());
  EXPECT_FALSE(Has("s/b")) << "the least recently used entry should have gone";
  EXPECT_TRUE(Has("s/a") && Has("s/c") && Has("s/d"));
  auto stats = Stats();
  EXPECT_LE(stats.index.bytes, o.budget.cache_size);
  EXPECT_EQ(stats.evictions, 1);
  EXPECT_TRUE(store_->List(kDataRoot)->size() == 3u) << "evicted data left on disk";
}

TEST_F(ManagementTest, EntryLargerThanTheBudgetIsNotAdmitted) {
  EngineOptions o;
  o.budget.cache_size = 5000;
  Open(o);
  ASSERT_OK(Put("s/small", 10).status());
  auto big = Put("s/big", 10000);
  ASSERT_TRUE(big.status().IsCapacityError()) << big.status();
  EXPECT_NE(big.status().message().find("not admitted"), std::string::npos);
  EXPECT_TRUE(Has("s/small")) << "a refused entry must not evict anything";
  EXPECT_FALSE(Has("s/big"));
  EXPECT_EQ(Stats().not_admitted, 1);
}

TEST_F(ManagementTest, ProtectedFreshEntriesAreNotEvicted) {
  EngineOptions o;
  o.budget.cache_size = 2 * 9000;
  o.budget.protect_s = 60;
  Open(o);
  ASSERT_OK(Put("s/a", 1000).status());
  ASSERT_OK(Put("s/b", 1000).status());
  EXPECT_TRUE(Put("s/c", 1000).status().IsCapacityError());
  clock_->Advance(61'000);
  ASSERT_OK(Put("s/c", 1000).status());
  EXPECT_EQ(Stats().index.keys, 2);
}

TEST_F(ManagementTest, ConcurrentPutsNeverExceedTheBudget) {
  EngineOptions o;
  o.budget.cache_size = 10 * 9000;
  Open(o);
  std::atomic<int64_t> worst{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        auto r = Put("t" + std::to_string(t) + "/k" + std::to_string(i % 7), 200 + 100 * (i % 9));
        EXPECT_TRUE(r.ok()) << r.status();
        int64_t used = Stats().index.bytes;
        int64_t w = worst.load();
        while (used > w && !worst.compare_exchange_weak(w, used)) {
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(worst.load(), o.budget.cache_size);
  int64_t on_disk = 0;
  for (const auto& b : *store_->List(kDataRoot)) on_disk += b.size;
  EXPECT_LE(on_disk, o.budget.cache_size);
  EXPECT_EQ(on_disk, Stats().index.bytes);
}

TEST_F(ManagementTest, MemoryTierServesPromotedEntriesWithinItsBound) {
  EngineOptions o;
  o.memory_size = 20000;
  o.memory_max_entry_bytes = 12000;
  Open(o);
  ASSERT_OK(Put("s/a", 1000).status());   // ~8 KiB
  ASSERT_OK(Put("s/b", 1000).status());
  ASSERT_OK(Put("s/huge", 5000).status());  // ~40 KiB: never promoted
  Read("s/a");
  Read("s/a");
  Read("s/huge");
  Read("s/huge");
  auto m = Stats().memory;
  EXPECT_EQ(m.entries, 1);
  EXPECT_EQ(m.hits, 1) << "the second read of s/a should come from memory";
  Read("s/b");
  Read("s/b");
  ASSERT_OK(Put("s/c", 1000).status());
  Read("s/c");
  m = Stats().memory;
  EXPECT_LE(m.bytes, o.memory_size);
  EXPECT_EQ(m.entries, 2) << "three 8 KiB entries cannot fit in 20000 bytes";
  // A new version is not served from the old copy.
  ASSERT_OK(Put("s/b", 10).status());
  auto b = *cache_->Get(*ObjectKey::Parse("s/b"), std::nullopt);
  EXPECT_EQ(b->meta.rows, 10);
}

TEST_F(ManagementTest, CascadeOverADiamondAndNoCascade) {
  Open({});
  //   base -> a, b ; a, b -> c (diamond) ; c -> d ; other stands alone
  ASSERT_OK(Put("s/base", 10).status());
  ASSERT_OK(Put("s/a", 10, {"s/base"}).status());
  ASSERT_OK(Put("s/b", 10, {"s/base"}).status());
  ASSERT_OK(Put("s/c", 10, {"s/a", "s/b"}).status());
  ASSERT_OK(Put("s/d", 10, {"s/c"}).status());
  ASSERT_OK(Put("s/other", 10).status());
  ASSERT_OK_AND_ASSIGN(auto only, admin_->Invalidate("s/c", /*cascade=*/false));
  EXPECT_EQ(only, std::vector<std::string>{"s/c"});
  EXPECT_TRUE(Has("s/d"));
  // Recomputing c is a new version of it: d, computed from the old c, goes.
  ASSERT_OK(Put("s/c", 10, {"s/a", "s/b"}).status());
  EXPECT_FALSE(Has("s/d"));
  ASSERT_OK(Put("s/d", 10, {"s/c"}).status());
  ASSERT_OK_AND_ASSIGN(auto removed, admin_->Invalidate("s/base", true));
  EXPECT_EQ(removed, (std::vector<std::string>{"s/a", "s/b", "s/base", "s/c", "s/d"}));
  EXPECT_TRUE(Has("s/other"));
  EXPECT_EQ(Stats().index.keys, 1);
}

TEST_F(ManagementTest, TagInvalidationCascades) {
  Open({});
  ASSERT_OK(Put("s/t1", 10, {}, {"table:events"}).status());
  ASSERT_OK(Put("s/t2", 10, {}, {"table:events", "x"}).status());
  ASSERT_OK(Put("s/derived", 10, {"s/t1"}).status());
  ASSERT_OK(Put("s/untagged", 10).status());
  ASSERT_OK_AND_ASSIGN(auto removed, admin_->InvalidateTag("table:events"));
  EXPECT_EQ(removed, (std::vector<std::string>{"s/derived", "s/t1", "s/t2"}));
  EXPECT_TRUE(Has("s/untagged"));
}

TEST_F(ManagementTest, InvalidationDuringAPutWins) {
  Open({});
  ASSERT_OK(Put("s/base", 10).status());
  PutOptions o;
  o.depends_on = {"s/base"};
  ASSERT_OK_AND_ASSIGN(auto w, cache_->BeginPut(*ObjectKey::Parse("s/derived"), Rows(1)->schema(), o));
  ASSERT_OK(w->Write(*Rows(10)));
  ASSERT_OK(admin_->Invalidate("s/base", true).status());  // races the put
  auto committed = w->Commit();
  ASSERT_TRUE(committed.status().IsCancelled()) << committed.status();
  EXPECT_NE(committed.status().message().find("s/base"), std::string::npos);
  EXPECT_FALSE(Has("s/derived"));
  EXPECT_TRUE(store_->List(kDataRoot)->empty());
}

TEST_F(ManagementTest, NewVersionOfADependencyInvalidatesDependents) {
  Open({});
  ASSERT_OK(Put("s/base", 10).status());
  ASSERT_OK(Put("s/derived", 10, {"s/base"}).status());
  ASSERT_OK(Put("s/base", 20).status());
  EXPECT_FALSE(Has("s/derived")) << "computed from version 1, served after version 2";
  EXPECT_EQ(Stats().invalidations, 1);
}

TEST_F(ManagementTest, AQueryResultsNewVersionCountsFromItsFillsStartNotItsCommit) {
  // A fill's readers see its result before it commits, and may at once derive entries
  // from it: those must survive the commit. What was derived from the previous result
  // goes when the fill starts. An object's new version counts at its commit.
  Open({});
  Index* index = engine_->options().index.get();
  const std::string query_key = std::string(kQueryKeyPrefix) + std::string(64, 'a');
  auto begin = [&](const std::string& key, std::vector<std::string> deps) {
    PutOptions o;
    o.depends_on = std::move(deps);
    auto w = cache_->BeginPut(*ObjectKey::Parse(key), Rows(1)->schema(), o);
    EXPECT_TRUE(w.ok()) << w.status();
    EXPECT_TRUE((*w)->Write(*Rows(3)).ok());
    return std::move(*w);
  };
  auto commit_query = [&](GenerationSnapshot since) -> arrow::Status {
    ARROW_ASSIGN_OR_RAISE(auto entry,
                          engine_->entries()->NewWriter(query_key, 1 << 20, "max_entry_bytes"));
    auto batch = Rows(5);
    entry->SetSchema(*batch->schema());
    ARROW_ASSIGN_OR_RAISE(auto writer,
                          arrow::ipc::internal::OpenRecordBatchWriter(
                              std::make_unique<EntryPayloadSink>(entry.get()), batch->schema()));
    ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(*batch));
    entry->CountBatch(batch->num_rows());
    ARROW_RETURN_NOT_OK(writer->Close());
    ARROW_ASSIGN_OR_RAISE(auto meta, entry->Finish());
    meta.query = "{}";
    meta.expires_ms = clock_->NowMillis() + 60000;
    CommitRequest request;
    request.also_watched = {KeyGeneration(query_key)};
    request.since = since;
    return engine_->committer()->Commit(std::move(meta), request).status();
  };
  auto old_reader = begin("s/old-reader", {query_key});  // derives from the previous result
  ASSERT_OK(engine_->invalidator()->NewVersionComing(query_key));
  auto refused = old_reader->Commit();
  EXPECT_TRUE(refused.status().IsCancelled()) << refused.status();
  ASSERT_OK_AND_ASSIGN(auto fill_started, index->Snapshot());
  ASSERT_OK(Put("s/from-stream", 10, {query_key}).status());  // commits before the result
  ASSERT_OK(commit_query(fill_started));
  EXPECT_TRUE(Has("s/from-stream")) << "the result's commit is not a new version";

  ASSERT_OK(engine_->invalidator()->NewVersionComing(query_key));  // a refill after the TTL
  EXPECT_FALSE(Has("s/from-stream"));
  EXPECT_EQ(Stats().invalidations, 1);

  auto watcher = begin("s/watcher", {"s/marker"});
  ASSERT_OK(Put("s/marker", 1).status());
  auto stale = watcher->Commit();
  EXPECT_TRUE(stale.status().IsCancelled()) << "an object's first version counts";
}

TEST_F(ManagementTest, DryRunShrinkListsExactlyWhatTheRealShrinkRemoves) {
  Open({});
  for (int i = 0; i < 6; ++i) ASSERT_OK(Put("s/k" + std::to_string(i), 100 * (i + 1)).status());
  Read("s/k0");
  ASSERT_OK_AND_ASSIGN(auto dry, admin_->Shrink(5000, /*dry_run=*/true));
  EXPECT_FALSE(dry.empty());
  EXPECT_EQ(Stats().index.keys, 6) << "a dry run removed something";
  ASSERT_OK_AND_ASSIGN(auto real, admin_->Shrink(5000, false));
  EXPECT_EQ(dry, real);
  EXPECT_LE(Stats().index.bytes, 5000);
  ASSERT_OK_AND_ASSIGN(auto one, admin_->Shrink(std::nullopt, false));
  EXPECT_EQ(one.size(), 1u);
}

TEST_F(ManagementTest, RuntimeSettingsPersistAcrossRestart) {
  char tmpl[] = "/tmp/quiver-mgmt-test-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  EngineOptions o;
  o.budget.cache_size = 1 << 20;
  Open(o, *LocalBlobStore::Open(dir));
  for (int i = 0; i < 4; ++i) ASSERT_OK(Put("s/k" + std::to_string(i), 1000).status());
  RuntimeSettings settings;
  settings.half_life = 77;
  settings.cache_size = 20000;  // forces evictions now
  settings.memory_size = 4096;
  ASSERT_OK(admin_->Configure(settings));
  EXPECT_LE(Stats().index.bytes, 20000);
  Open(o, *LocalBlobStore::Open(dir));  // o still says 1 MiB
  auto stats = Stats();
  EXPECT_EQ(stats.budget.half_life, 77);
  EXPECT_EQ(stats.budget.cache_size, 20000);
  EXPECT_EQ(stats.memory.capacity, 4096);
  EXPECT_LE(stats.index.bytes, 20000);
  RuntimeSettings bad;
  bad.half_life = 0.0;
  EXPECT_FALSE(admin_->Configure(bad).ok());
  std::filesystem::remove_all(dir);
}

std::optional<KeyUsage> UsageOf(Management& admin, const std::string& key) {
  for (const auto& e : *admin.Entries("")) {
    if (e.latest.key == key) return e.usage;
  }
  return std::nullopt;
}

TEST_F(ManagementTest, AccessHistoriesSurviveARestart) {
  EngineOptions o;
  o.budget.policy = "lru";
  o.budget.cache_size = 3 * 9000;  // about three 1000-row entries
  Open(o);
  for (auto k : {"s/a", "s/b", "s/c"}) {
    ASSERT_OK(Put(k, 1000).status());
    clock_->Advance(1000);
  }
  for (int i = 0; i < 3; ++i) Read("s/a");
  const int64_t a_read_ms = clock_->NowMillis();
  clock_->Advance(5000);
  Open(o, store_);  // closing saved the histories
  auto a = UsageOf(*admin_, "s/a");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->accesses, 4u);
  EXPECT_EQ(a->last_access_ms, a_read_ms);
  // Creation order would evict s/a, the oldest; its reads make s/b the least recent.
  ASSERT_OK(Put("s/d", 1000).status());
  EXPECT_FALSE(Has("s/b"));
  EXPECT_TRUE(Has("s/a") && Has("s/c") && Has("s/d"));
}

TEST_F(ManagementTest, EntriesStoredAfterTheLastSaveCountAsAccessedAtRestart) {
  EngineOptions o;
  o.budget.policy = "lru";
  o.budget.cache_size = 3 * 9000;
  Open(o);
  ASSERT_OK(Put("s/a", 1000).status());
  ASSERT_OK(Put("s/b", 1000).status());
  Read("s/a");
  ASSERT_OK(engine_->SaveLocalState());
  ASSERT_OK_AND_ASSIGN(std::string saved, store_->ReadAll(kUsageBlob));
  ASSERT_OK(Put("s/c", 1000).status());  // after the last save
  engine_.reset();
  ASSERT_OK(store_->WriteAll(kUsageBlob, saved));  // as if the process had crashed
  Open(o, store_);
  EXPECT_EQ(UsageOf(*admin_, "s/a")->accesses, 2u);
  EXPECT_EQ(UsageOf(*admin_, "s/c")->accesses, 1u);
  ASSERT_OK(Put("s/d", 1000).status());
  EXPECT_FALSE(Has("s/b")) << "s/c is newer than anything in the snapshot";
  EXPECT_TRUE(Has("s/a") && Has("s/c"));
}

TEST_F(ManagementTest, AnUnreadableUsageSnapshotLosesOnlyTheHistory) {
  Open({});
  ASSERT_OK(Put("s/a", 10).status());
  ASSERT_OK(Put("s/b", 10).status());
  engine_.reset();
  ASSERT_OK(store_->WriteAll(kUsageBlob, "not an arrow file"));
  Open({}, store_);
  EXPECT_TRUE(Has("s/a") && Has("s/b"));
  EXPECT_EQ(UsageOf(*admin_, "s/a")->accesses, 1u);
  Read("s/a");
  engine_.reset();  // saves a good snapshot over the bad one
  Open({}, store_);
  EXPECT_EQ(UsageOf(*admin_, "s/a")->accesses, 2u);
}

TEST(MemoryTier, CopiesAreIdentifiedByTheirDataBlobNotTheirVersion) {
  // Version numbers restart after a delete; blob names never repeat.
  MemoryTier tier(1 << 20, 1 << 16);
  arrow::io::BufferReader file(arrow::Buffer::FromString("stream bytes"));
  ASSERT_OK_AND_ASSIGN(auto copy, tier.Promote("s/a", 1, "data/00/0001.arrows", &file));
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(copy->ReadAt(0, 6).ValueOrDie()->ToString(), "stream") << "the copy is served";
  EXPECT_NE(tier.Lookup("s/a", "data/00/0001.arrows"), nullptr);
  EXPECT_EQ(tier.Lookup("s/a", "data/00/0002.arrows"), nullptr);
  EXPECT_EQ(tier.Lookup("s/b", "data/00/0001.arrows"), nullptr);
  tier.Erase("s/a", "data/00/0001.arrows");
  EXPECT_EQ(tier.Lookup("s/a", "data/00/0001.arrows"), nullptr);
  EXPECT_EQ(tier.Stats().bytes, 0);
}

TEST(MemoryTier, EvictsByTheCachesPolicy) {
  // Room for two 100-byte copies. The costly one read once outlives a cheap one read since,
  // with the cost-aware policy; with LRU the least recently used goes.
  const std::string bytes(100, 'x');
  auto fill = [&](MemoryTier* tier) {
    arrow::io::BufferReader costly(arrow::Buffer::FromString(bytes));
    arrow::io::BufferReader cheap(arrow::Buffer::FromString(bytes));
    arrow::io::BufferReader third(arrow::Buffer::FromString(bytes));
    ASSERT_OK(tier->Promote("s/costly", 1, "data/00/a.arrows", &costly, /*cost_s=*/60).status());
    ASSERT_OK(tier->Promote("s/cheap", 1, "data/00/b.arrows", &cheap, /*cost_s=*/0.001).status());
    ASSERT_NE(tier->Lookup("s/cheap", "data/00/b.arrows"), nullptr);
    ASSERT_OK(tier->Promote("s/third", 1, "data/00/c.arrows", &third, /*cost_s=*/1).status());
  };
  MemoryTier cost_aware(250, 100, std::make_shared<CostAwarePolicy>(1000));
  fill(&cost_aware);
  EXPECT_TRUE(cost_aware.Contains("s/costly", "data/00/a.arrows"));
  EXPECT_FALSE(cost_aware.Contains("s/cheap", "data/00/b.arrows"));
  EXPECT_EQ(cost_aware.Stats().bytes, 200);
  MemoryTier lru(250, 100, std::make_shared<LruPolicy>());
  fill(&lru);
  EXPECT_FALSE(lru.Contains("s/costly", "data/00/a.arrows"));
  EXPECT_TRUE(lru.Contains("s/cheap", "data/00/b.arrows"));
}

TEST(UsageSnapshot, EncodesAndDecodesEveryField) {
  UsageSnapshot snapshot;
  snapshot.tick = 1234;
  snapshot.records.push_back({"s/a", PolicyEntry{0, 0, 17.25, 1200, 9}, 1'700'000'000'123});
  snapshot.records.push_back({std::string(kQueryKeyPrefix) + std::string(64, 'f'),
                              PolicyEntry{0, 0, -3.5, 1234, 1}, 42});
  auto encode = [](const UsageSnapshot& snapshot) -> arrow::Result<std::shared_ptr<arrow::Buffer>> {
    ARROW_ASSIGN_OR_RAISE(auto sink, arrow::io::BufferOutputStream::Create());
    ARROW_RETURN_NOT_OK(WriteUsage(snapshot, 777, sink.get()));
    return sink->Finish();
  };
  ASSERT_OK_AND_ASSIGN(auto bytes, encode(snapshot));
  int64_t saved_ms = 0;
  ASSERT_OK_AND_ASSIGN(auto decoded,
                       DecodeUsage(std::make_shared<arrow::io::BufferReader>(bytes), &saved_ms));
  EXPECT_EQ(saved_ms, 777);
  EXPECT_EQ(decoded.tick, 1234u);
  ASSERT_EQ(decoded.records.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const auto& want = snapshot.records[i];
    const auto& got = decoded.records[i];
    EXPECT_EQ(got.key, want.key);
    EXPECT_EQ(got.history.log_weight, want.history.log_weight);
    EXPECT_EQ(got.history.last_tick, want.history.last_tick);
    EXPECT_EQ(got.history.accesses, want.history.accesses);
    EXPECT_EQ(got.last_access_ms, want.last_access_ms);
  }
  snapshot.records[0].history.log_weight = std::nan("");  // would corrupt the queue's order
  ASSERT_OK_AND_ASSIGN(auto nan_bytes, encode(snapshot));
  auto nan = DecodeUsage(std::make_shared<arrow::io::BufferReader>(nan_bytes));
  EXPECT_TRUE(nan.status().IsInvalid()) << nan.status();
  auto truncated = arrow::SliceBuffer(bytes, 0, bytes->size() / 2);
  auto bad = DecodeUsage(std::make_shared<arrow::io::BufferReader>(truncated));
  ASSERT_TRUE(bad.status().IsInvalid()) << bad.status();
  EXPECT_NE(bad.status().message().find("usage snapshot"), std::string::npos);
}

}  // namespace
}  // namespace quiver
