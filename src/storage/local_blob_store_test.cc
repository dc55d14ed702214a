// LocalBlobStore specifics beyond the conformance suite: on-disk effects.
#include "storage/local_blob_store.h"

#include <gtest/gtest.h>

#include <filesystem>
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

TEST_F(LocalBlobStoreTest, RemoveTemporariesCleansCrashLeftovers) {
  ASSERT_OK_AND_ASSIGN(auto store, LocalBlobStore::Open(dir_));
  std::ofstream(dir_ + "/.tmp/123-dead.part") << "torn";
  std::ofstream(dir_ + "/.tmp/124-dead.part") << "torn";
  ASSERT_OK_AND_ASSIGN(auto removed, store->RemoveTemporaries());
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

TEST_F(LocalBlobStoreTest, CommitsRaceDeletesThatPruneTheirDirectory) {
  // One thread's delete empties (and removes) the directory another thread's commit is
  // about to rename into; every commit must still land.
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

TEST_F(LocalBlobStoreTest, UnwritableRootIsAClearError) {
  auto r = LocalBlobStore::Open("/proc/quiver-cannot-be-here");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/proc/quiver-cannot-be-here"), std::string::npos)
      << r.status();
}

}  // namespace
}  // namespace quiver
