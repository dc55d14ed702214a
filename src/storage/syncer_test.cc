// Syncer: group commit of the data dir's flushes, background flushes, and LocalBlobStore
// leaving its fsyncs to it.
#include "storage/syncer.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/testing.h"
#include "storage/local_blob_store.h"

namespace quiver {
namespace {

namespace fs = std::filesystem;

class SyncerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quiver-syncer-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST(Durability, ParsesItsTwoModesAndNamesABadOne) {
  EXPECT_EQ(*ParseDurability("process"), Durability::kProcess);
  EXPECT_EQ(*ParseDurability("fsync"), Durability::kFsync);
  auto bad = ParseDurability("always");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("\"always\""), std::string::npos);
}

TEST_F(SyncerTest, RefusesABadIntervalOrDirectory) {
  EXPECT_FALSE(Syncer::Open(dir_, Durability::kProcess, std::chrono::milliseconds(0)).ok());
  auto missing = Syncer::Open(dir_ + "/nope", Durability::kFsync, std::chrono::milliseconds(10));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nope"), std::string::npos);
}

TEST_F(SyncerTest, FsyncModeFlushesBeforeSyncReturnsAndSharesFlushes) {
  ASSERT_OK_AND_ASSIGN(auto syncer,
                       Syncer::Open(dir_, Durability::kFsync, std::chrono::hours(1)));
  std::atomic<uint64_t> appended{0};
  std::atomic<uint64_t> covered{0};
  syncer->SetHooks([&] { return appended.load(); }, [&](uint64_t token) { covered = token; });
  appended = 1;
  ASSERT_OK(syncer->Sync());
  // The flush started after the "append": its hook saw it and reported it covered.
  EXPECT_EQ(covered.load(), 1u);
  EXPECT_EQ(syncer->stats().syncs, 1);

  // Many writers at once: each returns only once a flush that began after its call ended,
  // and they share flushes.
  constexpr int kWriters = 32;
  std::promise<void> go;
  auto started = go.get_future().share();
  std::vector<std::thread> writers;
  std::atomic<int> done{0};
  for (int i = 0; i < kWriters; ++i) {
    writers.emplace_back([&, i] {
      started.wait();
      const uint64_t mine = appended.fetch_add(1) + 1;
      EXPECT_OK(syncer->Sync());
      EXPECT_GE(covered.load(), mine) << "writer " << i << " returned before its flush";
      ++done;
    });
  }
  go.set_value();
  for (auto& w : writers) w.join();
  EXPECT_EQ(done.load(), kWriters);
  const auto stats = syncer->stats();
  EXPECT_LT(stats.syncs - 1, kWriters) << "no flush was shared";
  EXPECT_GT(stats.waiters, 0);
}

TEST_F(SyncerTest, ProcessModeReturnsAtOnceAndFlushesInTheBackground) {
  ASSERT_OK_AND_ASSIGN(auto syncer,
                       Syncer::Open(dir_, Durability::kProcess, std::chrono::milliseconds(20)));
  std::promise<uint64_t> flushed;
  std::atomic<bool> once{false};
  syncer->SetHooks([] { return uint64_t{7}; }, [&](uint64_t token) {
    if (!once.exchange(true)) flushed.set_value(token);
  });
  ASSERT_OK(syncer->Sync());
  EXPECT_EQ(syncer->stats().syncs, 0) << "nothing was written: nothing to flush";
  syncer->Dirty();
  auto result = flushed.get_future();
  ASSERT_EQ(result.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(result.get(), 7u);
  // The hook runs as the flush ends, before its count is taken: Stop() waits for the
  // background thread, after which the count is final.
  syncer->Stop();
  EXPECT_GE(syncer->stats().syncs, 1);
}

TEST_F(SyncerTest, StopFlushesWhatIsLeft) {
  ASSERT_OK_AND_ASSIGN(auto syncer,
                       Syncer::Open(dir_, Durability::kProcess, std::chrono::hours(1)));
  syncer->Dirty();
  syncer->Stop();
  EXPECT_EQ(syncer->stats().syncs, 1);
  syncer->Stop();  // idempotent
}

TEST_F(SyncerTest, ALocalStoreLeavesItsFlushesToTheSyncer) {
  ASSERT_OK_AND_ASSIGN(auto store, LocalBlobStore::Open(dir_));
  ASSERT_OK_AND_ASSIGN(auto syncer,
                       Syncer::Open(dir_, Durability::kProcess, std::chrono::hours(1)));
  store->SetSyncer(syncer);
  ASSERT_OK(store->WriteAll("a/b/c", "hello"));
  ASSERT_OK_AND_ASSIGN(auto text, store->ReadAll("a/b/c"));
  EXPECT_EQ(text, "hello");
  ASSERT_OK(store->Move("a/b/c", "q/c"));
  ASSERT_OK(store->Delete("q/c"));
  EXPECT_TRUE(store->List("")->empty());
  // Everything above only marked the data dir dirty: the one flush is the syncer's.
  EXPECT_EQ(syncer->stats().syncs, 0);
  ASSERT_OK(syncer->SyncNow());
  EXPECT_EQ(syncer->stats().syncs, 1);
}

}  // namespace
}  // namespace quiver
