// The BlobStore conformance suite: every implementation must pass all of it.
#include <arrow/buffer.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "common/testing.h"
#include "storage/local_blob_store.h"
#include "storage/memory_blob_store.h"

namespace quiver {
namespace {

class LocalFactory {
 public:
  LocalFactory() {
    char tmpl[] = "/tmp/quiver-blob-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  ~LocalFactory() { std::filesystem::remove_all(dir_); }
  std::shared_ptr<BlobStore> Make() { return *LocalBlobStore::Open(dir_); }

 private:
  std::string dir_;
};

class MemoryFactory {
 public:
  std::shared_ptr<BlobStore> Make() { return std::make_shared<MemoryBlobStore>(); }
};

template <typename Factory>
class BlobStoreConformance : public ::testing::Test {
 protected:
  void SetUp() override { store_ = factory_.Make(); }
  Factory factory_;
  std::shared_ptr<BlobStore> store_;
};

using Factories = ::testing::Types<LocalFactory, MemoryFactory>;
TYPED_TEST_SUITE(BlobStoreConformance, Factories);

TYPED_TEST(BlobStoreConformance, CommitMakesBlobVisibleWhole) {
  auto& store = *this->store_;
  ASSERT_OK_AND_ASSIGN(auto writer, store.OpenWriter("a/b/blob1"));
  ASSERT_OK(writer->Write("hello ", 6));
  // Not visible before commit.
  EXPECT_TRUE(store.OpenReader("a/b/blob1").status().IsKeyError());
  std::string big(3 << 20, 'z');  // larger than any internal buffer
  ASSERT_OK(writer->Write(big.data(), static_cast<int64_t>(big.size())));
  EXPECT_EQ(*writer->Tell(), 6 + static_cast<int64_t>(big.size()));
  ASSERT_OK(writer->Commit());
  ASSERT_OK_AND_ASSIGN(auto content, store.ReadAll("a/b/blob1"));
  EXPECT_EQ(content, "hello " + big);
  EXPECT_FALSE(writer->Write("x", 1).ok()) << "write after commit must fail";
}

TYPED_TEST(BlobStoreConformance, AbortAndDestructionLeaveNothing) {
  auto& store = *this->store_;
  {
    ASSERT_OK_AND_ASSIGN(auto writer, store.OpenWriter("x/aborted"));
    ASSERT_OK(writer->Write("data", 4));
    ASSERT_OK(writer->Abort());
    ASSERT_OK(writer->Abort());  // idempotent
  }
  {
    ASSERT_OK_AND_ASSIGN(auto writer, store.OpenWriter("x/dropped"));
    ASSERT_OK(writer->Write("data", 4));
  }
  ASSERT_OK_AND_ASSIGN(auto listed, store.List(""));
  EXPECT_TRUE(listed.empty());
  EXPECT_TRUE(store.OpenReader("x/aborted").status().IsKeyError());
}

TYPED_TEST(BlobStoreConformance, CommitReplacesAtomically) {
  auto& store = *this->store_;
  ASSERT_OK(store.WriteAll("k/v", "first"));
  ASSERT_OK_AND_ASSIGN(auto reader, store.OpenReader("k/v"));
  ASSERT_OK(store.WriteAll("k/v", "second version"));
  EXPECT_EQ(*store.ReadAll("k/v"), "second version");
  // A reader opened before the replacement keeps seeing the old bytes.
  EXPECT_EQ((*reader->ReadAt(0, 5))->ToString(), "first");
}

TYPED_TEST(BlobStoreConformance, ListDeleteMove) {
  auto& store = *this->store_;
  ASSERT_OK(store.WriteAll("m/s1/o1", "1"));
  ASSERT_OK(store.WriteAll("m/s1/o2", "22"));
  ASSERT_OK(store.WriteAll("m/s2/o1", "333"));
  ASSERT_OK(store.WriteAll("n/other", "4444"));
  ASSERT_OK_AND_ASSIGN(auto s1, store.List("m/s1/"));
  ASSERT_EQ(s1.size(), 2u);
  EXPECT_EQ(s1[0].name, "m/s1/o1");
  EXPECT_EQ(s1[1].size, 2);
  ASSERT_OK_AND_ASSIGN(auto all, store.List(""));
  EXPECT_EQ(all.size(), 4u);

  ASSERT_OK(store.Delete("m/s1/o1"));
  ASSERT_OK(store.Delete("m/s1/o1"));  // missing is fine
  EXPECT_EQ(store.List("m/s1/")->size(), 1u);

  ASSERT_OK(store.Move("m/s2/o1", "q/m/s2/o1"));
  EXPECT_EQ(*store.ReadAll("q/m/s2/o1"), "333");
  EXPECT_TRUE(store.OpenReader("m/s2/o1").status().IsKeyError());
  EXPECT_TRUE(store.Move("missing/x", "y/z").IsKeyError());
}

TYPED_TEST(BlobStoreConformance, RejectsEscapingNames) {
  auto& store = *this->store_;
  for (const char* bad : {"", "/abs", "../up", "a/../../b", "a//b", ".tmp/x", "a/"}) {
    EXPECT_TRUE(store.OpenWriter(bad).status().IsInvalid()) << bad;
    EXPECT_TRUE(store.OpenReader(bad).status().IsInvalid()) << bad;
  }
}

}  // namespace
}  // namespace quiver
