// The BlobStore conformance suite: every BlobStore implementation must pass all of it.
//
// Modelled on Arrow's filesystem/test_util.h: derive a fixture from BlobStoreConformanceTest,
// implement OpenStore() (a handle on one empty store per test; two handles are two processes
// sharing it when the implementation supports that), then instantiate every case with
// QUIVER_BLOB_STORE_CONFORMANCE_TESTS(MyFixture).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <arrow/buffer.h>

#include "common/testing.h"
#include "storage/blob_store.h"

namespace quiver {

class BlobStoreConformanceTest : public ::testing::Test {
 protected:
  /// \brief A handle on the store under test (empty at the start of each test).
  virtual std::shared_ptr<BlobStore> OpenStore() = 0;

  void SetUp() override { store_ = OpenStore(); }

  void TestCommitMakesBlobVisibleWhole() {
    auto& store = *store_;
    ASSERT_OK_AND_ASSIGN(auto writer, store.OpenWriter("a/b/blob1"));
    ASSERT_OK(writer->Write("hello ", 6));
    EXPECT_TRUE(store.OpenReader("a/b/blob1").status().IsKeyError()) << "visible before commit";
    std::string big(3 << 20, 'z');  // larger than any internal buffer
    ASSERT_OK(writer->Write(big.data(), static_cast<int64_t>(big.size())));
    EXPECT_EQ(*writer->Tell(), 6 + static_cast<int64_t>(big.size()));
    ASSERT_OK(writer->Commit());
    ASSERT_OK_AND_ASSIGN(auto content, store.ReadAll("a/b/blob1"));
    EXPECT_EQ(content, "hello " + big);
    EXPECT_FALSE(writer->Write("x", 1).ok()) << "write after commit must fail";
  }

  void TestAbortAndDestructionLeaveNothing() {
    auto& store = *store_;
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
    EXPECT_TRUE(store.OpenReader("x/aborted").status().IsKeyError())
        << store.OpenReader("x/aborted").status();
    EXPECT_EQ(*store.RemoveAllTemporaries(), 0) << "an aborted writer left a temporary";
  }

  void TestCommitReplacesAtomically() {
    auto& store = *store_;
    ASSERT_OK(store.WriteAll("k/v", "first"));
    ASSERT_OK_AND_ASSIGN(auto reader, store.OpenReader("k/v"));
    ASSERT_OK(store.WriteAll("k/v", "second version"));
    EXPECT_EQ(*store.ReadAll("k/v"), "second version");
    // A reader opened before the replacement keeps seeing the old bytes.
    EXPECT_EQ((*reader->ReadAt(0, 5))->ToString(), "first");
  }

  void TestListDeleteMove() {
    auto& store = *store_;
    const int64_t before = NowMs() - 1000;
    ASSERT_OK(store.WriteAll("m/s1/o1", "1"));
    ASSERT_OK(store.WriteAll("m/s1/o2", "22"));
    ASSERT_OK(store.WriteAll("m/s2/o1", "333"));
    ASSERT_OK(store.WriteAll("n/other", "4444"));
    ASSERT_OK_AND_ASSIGN(auto s1, store.List("m/s1/"));
    ASSERT_EQ(s1.size(), 2u);
    EXPECT_EQ(s1[0].name, "m/s1/o1");
    EXPECT_EQ(s1[1].size, 2);
    EXPECT_GE(s1[1].modified_ms, before);
    EXPECT_LE(s1[1].modified_ms, NowMs() + 1000);
    ASSERT_OK_AND_ASSIGN(auto all, store.List(""));
    EXPECT_EQ(all.size(), 4u);

    ASSERT_OK(store.Delete("m/s1/o1"));
    ASSERT_OK(store.Delete("m/s1/o1"));  // missing is fine
    EXPECT_EQ(store.List("m/s1/")->size(), 1u);

    ASSERT_OK(store.Move("m/s2/o1", "q/m/s2/o1"));
    EXPECT_EQ(*store.ReadAll("q/m/s2/o1"), "333");
    EXPECT_TRUE(store.OpenReader("m/s2/o1").status().IsKeyError())
        << store.OpenReader("m/s2/o1").status();
    EXPECT_TRUE(store.Move("missing/x", "y/z").IsKeyError());
  }

  void TestRejectsEscapingNames() {
    auto& store = *store_;
    for (const char* bad : {"", "/abs", "../up", "a/../../b", "a//b", ".tmp/x", "a/"}) {
      EXPECT_TRUE(store.OpenWriter(bad).status().IsInvalid()) << bad;
      EXPECT_TRUE(store.OpenReader(bad).status().IsInvalid()) << bad;
    }
  }

  // Two handles (processes) write the same name at once: the blob is always one write whole.
  void TestRacingWritersOfOneNameNeverTear() {
    auto other = OpenStore();
    std::atomic<bool> stop{false};
    std::string error_a, error_b, error_read;  // one per thread
    auto writer = [&](BlobStore* store, char fill, size_t size, std::string* error) {
      for (int i = 0; i < 60 && error->empty(); ++i) {
        auto st = store->WriteAll("race/one", std::string(size, fill));
        if (!st.ok()) *error = st.ToString();
      }
    };
    std::thread reader([&] {
      while (!stop && error_read.empty()) {
        auto content = store_->ReadAll("race/one");
        if (!content.ok()) continue;  // not written yet
        bool whole = (content->size() == 70000 && content->find_first_not_of('a') == std::string::npos) ||
                     (content->size() == 90000 && content->find_first_not_of('b') == std::string::npos);
        if (!whole) error_read = "a reader saw a torn blob of " + std::to_string(content->size());
      }
    });
    std::thread a(writer, store_.get(), 'a', 70000, &error_a);
    std::thread b(writer, other.get(), 'b', 90000, &error_b);
    a.join();
    b.join();
    stop = true;
    reader.join();
    EXPECT_EQ(error_a, "");
    EXPECT_EQ(error_b, "");
    EXPECT_EQ(error_read, "");
    EXPECT_EQ(store_->List("race/")->size(), 1u);
  }

  // Deleting the last blob of a directory while other writers commit into it: every commit
  // must land (a store may prune emptied directories).
  void TestCommitsRaceDeletesInOneDirectory() {
    auto other = OpenStore();
    auto churn = [&](BlobStore* store, const std::string& name, std::string* error) {
      for (int i = 0; i < 300 && error->empty(); ++i) {
        auto st = store->WriteAll(name, "x");
        if (st.ok() && store->ReadAll(name).ValueOr("") != "x") {
          st = arrow::Status::IOError("lost write");
        }
        if (st.ok()) st = store->Delete(name);
        if (!st.ok()) *error = st.ToString();
      }
    };
    std::string error_a, error_b;
    std::thread a(churn, store_.get(), "p/q/a", &error_a);
    std::thread b(churn, other.get(), "p/q/b", &error_b);
    a.join();
    b.join();
    EXPECT_EQ(error_a, "");
    EXPECT_EQ(error_b, "");
    EXPECT_TRUE(store_->List("p/")->empty());
  }

  static int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  std::shared_ptr<BlobStore> store_;
};

#define QUIVER_BLOB_STORE_CONFORMANCE_TEST(FIXTURE, NAME) \
  TEST_F(FIXTURE, NAME) { Test##NAME(); }

#define QUIVER_BLOB_STORE_CONFORMANCE_TESTS(FIXTURE)                            \
  QUIVER_BLOB_STORE_CONFORMANCE_TEST(FIXTURE, CommitMakesBlobVisibleWhole)     \
  QUIVER_BLOB_STORE_CONFORMANCE_TEST(FIXTURE, AbortAndDestructionLeaveNothing) \
  QUIVER_BLOB_STORE_CONFORMANCE_TEST(FIXTURE, CommitReplacesAtomically)        \
  QUIVER_BLOB_STORE_CONFORMANCE_TEST(FIXTURE, ListDeleteMove)                  \
  QUIVER_BLOB_STORE_CONFORMANCE_TEST(FIXTURE, RejectsEscapingNames)            \
  QUIVER_BLOB_STORE_CONFORMANCE_TEST(FIXTURE, RacingWritersOfOneNameNeverTear) \
  QUIVER_BLOB_STORE_CONFORMANCE_TEST(FIXTURE, CommitsRaceDeletesInOneDirectory)

}  // namespace quiver
