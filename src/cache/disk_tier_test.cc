#include "cache/disk_tier.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cache/engine_test_util.h"
#include "format/stored_stream.h"
#include "policy/eviction_policy.h"
#include "storage/local_blob_store.h"
#include "storage/memory_blob_store.h"

namespace quiver {
namespace {

// An engine whose "shared" store is one MemoryBlobStore and whose disk tier is another.
class DiskTierTest : public EngineTest {
 protected:
  void OpenTiered(int64_t disk_size, int64_t max_entry = 0) {
    EngineOptions options;
    options.disk_store = disk_;
    options.disk_size = disk_size;
    options.disk_max_entry_bytes = max_entry;
    Open(std::move(options), shared_);
  }
  DiskTier* tier() { return engine_->entries()->disk(); }
  // Reads `key` the way a hit does: every message, front to back.
  int64_t ReadAll(const std::string& key) {
    auto opened = cache_->Get(*ObjectKey::Parse(key), std::nullopt);
    EXPECT_TRUE(opened.ok() && opened->has_value()) << key;
    if (!opened.ok() || !opened->has_value()) return -1;
    auto stream = StoredStream::Open((*opened)->file);
    EXPECT_TRUE(stream.ok()) << stream.status();
    int64_t messages = 0;
    while (true) {
      auto next = (*stream)->Next();
      EXPECT_TRUE(next.ok()) << next.status();
      if (!next.ok() || !next->has_value()) break;
      ++messages;
    }
    return messages;
  }
  std::shared_ptr<MemoryBlobStore> shared_ = std::make_shared<MemoryBlobStore>();
  std::shared_ptr<MemoryBlobStore> disk_ = std::make_shared<MemoryBlobStore>();
};

TEST_F(DiskTierTest, TheWriterKeepsACopyThatLaterReadsUseInsteadOfTheSharedStore) {
  OpenTiered(1 << 20);
  ASSERT_OK_AND_ASSIGN(auto meta, Put("s/a", 100));
  EXPECT_TRUE(tier()->Contains(meta.blob));
  ASSERT_OK_AND_ASSIGN(auto copy, disk_->ReadAll(meta.blob));
  ASSERT_OK_AND_ASSIGN(auto original, shared_->ReadAll(meta.blob));
  EXPECT_EQ(copy, original);
  // Gone from the shared store: still served, from the copy.
  ASSERT_OK(shared_->Delete(meta.blob));
  EXPECT_EQ(ReadAll("s/a"), 1);
  EXPECT_EQ(Stats().disk.hits, 1);
  EXPECT_TRUE(Stats().has_disk_tier);
}

TEST_F(DiskTierTest, AFirstReadFromTheSharedStoreLeavesACopyOnlyOnceReadWhole) {
  OpenTiered(1 << 20);
  ASSERT_OK_AND_ASSIGN(auto meta, Put("s/a", 1000));
  tier()->Erase(meta.blob);  // as on a node that did not write it
  ASSERT_FALSE(tier()->Contains(meta.blob));
  {
    // Opened but not read: no copy.
    auto opened = cache_->Get(*ObjectKey::Parse("s/a"), std::nullopt);
    ASSERT_TRUE(opened.ok() && opened->has_value());
  }
  EXPECT_FALSE(tier()->Contains(meta.blob));
  EXPECT_TRUE(disk_->OpenReader(meta.blob).status().IsKeyError()) << "an abandoned copy stayed";
  EXPECT_EQ(ReadAll("s/a"), 1);
  EXPECT_TRUE(tier()->Contains(meta.blob));
  ASSERT_OK_AND_ASSIGN(auto copy, disk_->ReadAll(meta.blob));
  ASSERT_OK_AND_ASSIGN(auto original, shared_->ReadAll(meta.blob));
  EXPECT_EQ(copy, original);
  EXPECT_EQ(Stats().disk.copies_made, 2);
}

TEST_F(DiskTierTest, ACopyOfTheWrongSizeIsDroppedAndTheSharedBlobServed) {
  OpenTiered(1 << 20);
  ASSERT_OK_AND_ASSIGN(auto meta, Put("s/a", 1000));
  ASSERT_OK_AND_ASSIGN(auto copy, disk_->ReadAll(meta.blob));
  ASSERT_OK(disk_->WriteAll(meta.blob, copy.substr(0, copy.size() / 2)));  // truncated
  EXPECT_EQ(ReadAll("s/a"), 1);  // from the shared store, copied again while read
  EXPECT_EQ(Stats().disk.damaged, 1);
  EXPECT_EQ(Stats().disk.hits, 0);
  EXPECT_EQ(ReadAll("s/a"), 1);  // from the new copy
  EXPECT_EQ(Stats().disk.hits, 1);
  ASSERT_OK_AND_ASSIGN(auto again, disk_->ReadAll(meta.blob));
  EXPECT_EQ(again, copy);
}

TEST_F(DiskTierTest, RemovingAnEntryDropsItsCopy) {
  OpenTiered(1 << 20);
  ASSERT_OK_AND_ASSIGN(auto meta, Put("s/a", 10));
  ASSERT_OK(cache_->Delete(*ObjectKey::Parse("s/a")).status());
  EXPECT_FALSE(tier()->Contains(meta.blob));
  EXPECT_TRUE(disk_->OpenReader(meta.blob).status().IsKeyError());
}

TEST_F(DiskTierTest, StaysWithinItsBudgetAndSkipsEntriesAboveItsLimit) {
  ASSERT_OK_AND_ASSIGN(auto probe, [&]() -> arrow::Result<EntryMeta> {
    OpenTiered(1 << 20);
    return Put("s/probe", 100);
  }());
  const int64_t one = probe.bytes;
  OpenTiered(3 * one + one / 2, /*max_entry=*/2 * one);
  for (int i = 0; i < 6; ++i) ASSERT_OK(Put("s/k" + std::to_string(i), 100).status());
  auto stats = Stats().disk;
  EXPECT_LE(stats.bytes, 3 * one + one / 2);
  EXPECT_EQ(stats.entries, 3);
  ASSERT_OK_AND_ASSIGN(auto big, Put("s/big", 10000));
  EXPECT_FALSE(tier()->Contains(big.blob));
  EXPECT_TRUE(disk_->OpenReader(big.blob).status().IsKeyError());
  // Every entry still reads, from the shared store where there is no copy.
  for (int i = 0; i < 6; ++i) EXPECT_EQ(ReadAll("s/k" + std::to_string(i)), 1);
}

TEST(DiskTierTee, TheCopyIsTheLocalFileOfAWriteToTheSharedStoreUntilItIsDropped) {
  char tmpl[] = "/tmp/quiver-tee-test-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  ASSERT_OK_AND_ASSIGN(auto local, LocalBlobStore::Open(dir));
  auto tier = std::make_shared<DiskTier>(local, /*capacity=*/1 << 20, /*max_entry_bytes=*/8,
                                         std::make_shared<LruPolicy>());
  auto shared = std::make_shared<MemoryBlobStore>();
  ASSERT_OK_AND_ASSIGN(auto plain, shared->OpenWriter("data/x"));
  EXPECT_EQ(plain->local_path(), "") << "a shared store has no local file";
  auto tee = tier->TeeWriter(std::move(plain));
  const std::string path = tee->local_path();
  ASSERT_FALSE(path.empty());
  ASSERT_OK(tee->Write("12345", 5));
  ASSERT_OK(tee->Flush());
  std::ifstream copy(path, std::ios::binary);
  std::string read(5, '\0');
  ASSERT_TRUE(copy.read(read.data(), 5)) << "Flush() reaches the copy";
  EXPECT_EQ(read, "12345");
  ASSERT_OK(tee->Write("6789", 4));  // past the tier's entry limit: the copy goes
  EXPECT_EQ(tee->local_path(), "");
  ASSERT_OK(tee->Commit());
  ASSERT_OK_AND_ASSIGN(auto stored, shared->ReadAll("data/x"));
  EXPECT_EQ(stored, "123456789") << "the shared write goes on without the copy";
  std::filesystem::remove_all(dir);
}

TEST_F(DiskTierTest, CopiesFromAnEarlierRunAreAdopted) {
  OpenTiered(1 << 20);
  ASSERT_OK_AND_ASSIGN(auto meta, Put("s/a", 10));
  OpenTiered(1 << 20);  // same stores, new engine
  EXPECT_TRUE(tier()->Contains(meta.blob));
  ASSERT_OK(shared_->Delete(meta.blob));
  EXPECT_EQ(ReadAll("s/a"), 1);
}

}  // namespace
}  // namespace quiver
