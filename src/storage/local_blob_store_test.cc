// LocalBlobStore specifics beyond the conformance suite: on-disk effects.
#include "storage/local_blob_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <chrono>
#include <fstream>
#include <thread>

#include "common/testing.h"

namespace quiver {
namespace {

namespace fs = std::filesystem;

class LocalBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quiver-local-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }
  size_t TempFiles() const {
    size_t n = 0;
    for (auto& e : fs::directory_iterator(dir_ + "/.tmp")) (void)e, ++n;
    return n;
  }
  std::string dir_;
};

TEST_F(LocalBlobStoreTest, WritesGoToTempUntilCommit) {
  ASSERT_OK_AND_ASSIGN(auto store, LocalBlobStore::Open(dir_));
  ASSERT_OK_AND_ASSIGN(auto writer, store->OpenWriter("a/b"));
  ASSERT_OK(writer->Write("abc", 3));
  EXPECT_EQ(TempFiles(), 1u);
  EXPECT_FALSE(fs::exists(dir_ + "/a/b"));
  ASSERT_OK(writer->Commit());
  EXPECT_EQ(TempFiles(), 0u);
  EXPECT_TRUE(fs::exists(dir_ + "/a/b"));
}

TEST_F(LocalBlobStoreTest, TheLocalPathHoldsWhatWasFlushedAndStaysReadableOnceOpen) {
  ASSERT_OK_AND_ASSIGN(auto store, LocalBlobStore::Open(dir_));
  ASSERT_OK_AND_ASSIGN(auto writer, store->OpenWriter("a/b"));
  const std::string path = writer->local_path();
  ASSERT_FALSE(path.empty());
  ASSERT_OK(writer->Write("abc", 3));
  std::ifstream early(path, std::ios::binary);
  EXPECT_EQ(fs::file_size(path), 0u) << "buffered, not yet written";
  ASSERT_OK(writer->Flush());
  EXPECT_EQ(fs::file_size(path), 3u);
  std::string read(3, '\0');
  ASSERT_TRUE(early.read(read.data(), 3));
  EXPECT_EQ(read, "abc");
  // The file opened before the commit renamed it still reads what comes after.
  ASSERT_OK(writer->Write("def", 3));
  ASSERT_OK(writer->Commit());
  EXPECT_EQ(writer->local_path(), "");
  EXPECT_FALSE(fs::exists(path));
  ASSERT_TRUE(early.read(read.data(), 3));
  EXPECT_EQ(read, "def");

  ASSERT_OK_AND_ASSIGN(auto aborted, store->OpenWriter("a/c"));
  ASSERT_OK(aborted->Write("xyz", 3));
  ASSERT_OK(aborted->Flush());
  std::ifstream open(aborted->local_path(), std::ios::binary);
  ASSERT_OK(aborted->Abort());
  EXPECT_EQ(aborted->local_path(), "");
  EXPECT_EQ(TempFiles(), 0u);
  ASSERT_TRUE(open.read(read.data(), 3)) << "an open file survives the abort's unlink";
  EXPECT_EQ(read, "xyz");
}

TEST_F(LocalBlobStoreTest, RemoveTemporariesCleansCrashLeftovers) {
  ASSERT_OK_AND_ASSIGN(auto store, LocalBlobStore::Open(dir_, "nodeA"));
  std::ofstream(dir_ + "/.tmp/nodeA~123-dead.part") << "torn";
  std::ofstream(dir_ + "/.tmp/nodeA-b~7-live.part") << "another node's, being written";
  std::ofstream(dir_ + "/.tmp/nodeB~124-live.part") << "being written";
  std::ofstream(dir_ + "/.tmp/nodeC~125-old.part") << "torn long ago";
  auto old = fs::last_write_time(dir_ + "/.tmp/nodeC~125-old.part") - std::chrono::hours(2);
  fs::last_write_time(dir_ + "/.tmp/nodeC~125-old.part", old);
  // This writer's own, and those untouched for an hour: another node's live write stays.
  const int64_t hour_ago = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count() -
                           3600 * 1000;
  ASSERT_OK_AND_ASSIGN(auto removed, store->RemoveTemporaries(/*own=*/true, hour_ago));
  EXPECT_EQ(removed, 2);
  EXPECT_EQ(TempFiles(), 2u);
  EXPECT_TRUE(fs::exists(dir_ + "/.tmp/nodeB~124-live.part"));
  EXPECT_TRUE(fs::exists(dir_ + "/.tmp/nodeA-b~7-live.part")) << "node nodeA-b is not nodeA";
  ASSERT_OK_AND_ASSIGN(removed, store->RemoveAllTemporaries());
  EXPECT_EQ(removed, 2);
  EXPECT_EQ(TempFiles(), 0u);
  // Temporaries never show up in listings.
  std::ofstream(dir_ + "/.tmp/125-dead.part") << "torn";
  EXPECT_TRUE(store->List("")->empty());
}

TEST_F(LocalBlobStoreTest, DeleteRemovesEmptiedDirectories) {
  ASSERT_OK_AND_ASSIGN(auto store, LocalBlobStore::Open(dir_));
  ASSERT_OK(store->WriteAll("x/y/z/blob", "1"));
  ASSERT_OK(store->Delete("x/y/z/blob"));
  EXPECT_FALSE(fs::exists(dir_ + "/x"));
  EXPECT_TRUE(fs::exists(dir_));
}

TEST_F(LocalBlobStoreTest, DeletesPruneEmptiedDirectoriesEvenUnderRacingCommits) {
  // One thread's delete empties (and removes) the directory another thread's commit is
  // about to rename into; every commit must still land, and nothing empty stays behind.
  ASSERT_OK_AND_ASSIGN(auto store, LocalBlobStore::Open(dir_));
  auto churn = [&](const std::string& name, std::string* error) {
    for (int i = 0; i < 400 && error->empty(); ++i) {
      auto st = store->WriteAll(name, "x");
      if (st.ok()) st = store->Delete(name);
      if (!st.ok()) *error = st.ToString();
    }
  };
  std::string error_a, error_b;
  std::thread a(churn, "p/q/a", &error_a);
  std::thread b(churn, "p/q/b", &error_b);
  a.join();
  b.join();
  EXPECT_EQ(error_a, "");
  EXPECT_EQ(error_b, "");
  EXPECT_FALSE(fs::exists(dir_ + "/p")) << "emptied directories should be gone";
}

TEST_F(LocalBlobStoreTest, AnExclusiveOwnerAndClusterNodesNeverShareADirectory) {
  ASSERT_OK_AND_ASSIGN(auto owner, LocalBlobStore::Open(dir_));
  ASSERT_OK(owner->Lock(/*exclusive=*/true));
  ASSERT_OK_AND_ASSIGN(auto second, LocalBlobStore::Open(dir_));
  auto refused = second->Lock(true);
  EXPECT_NE(refused.message().find("in use by another quiver process"), std::string::npos)
      << refused;
  EXPECT_FALSE(second->Lock(false).ok());
  owner.reset();  // the lock goes with the store
  ASSERT_OK(second->Lock(false));
  ASSERT_OK_AND_ASSIGN(auto node, LocalBlobStore::Open(dir_));
  ASSERT_TRUE(node->Lock(false).ok()) << "cluster nodes share the directory";
  ASSERT_OK_AND_ASSIGN(auto third, LocalBlobStore::Open(dir_));
  EXPECT_FALSE(third->Lock(true).ok());
}

TEST_F(LocalBlobStoreTest, UnwritableRootIsAClearError) {
  auto r = LocalBlobStore::Open("/proc/quiver-cannot-be-here");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/proc/quiver-cannot-be-here"), std::string::npos)
      << r.status();
}

}  // namespace
}  // namespace quiver
