// The Index conformance suite (typed over implementations) and manifest round-trips.
#include <gtest/gtest.h>

#include <thread>

#include "common/testing.h"
#include "index/embedded_index.h"

namespace quiver {
namespace {

EntryMeta Entry(const std::string& key, uint64_t version, int64_t bytes = 100) {
  EntryMeta e;
  e.key = key;
  e.version = version;
  e.blob = "data/" + key + "/" + std::to_string(version);
  e.bytes = bytes;
  e.rows = 10;
  e.batches = 1;
  e.schema_fingerprint = "00ff";
  e.checksum = "0123456789abcdef";
  e.created_ms = 1700000000000 + static_cast<int64_t>(version);
  return e;
}

template <typename T>
class IndexConformance : public ::testing::Test {
 protected:
  T index_;
};
using Implementations = ::testing::Types<EmbeddedIndex>;
TYPED_TEST_SUITE(IndexConformance, Implementations);

TYPED_TEST(IndexConformance, PublishGetLatestAndVersions) {
  auto& index = this->index_;
  EXPECT_FALSE(index.Get("s/o", std::nullopt)->has_value());
  EXPECT_EQ(*index.LatestVersion("s/o"), 0u);
  ASSERT_OK(index.Publish(Entry("s/o", 1), 0));
  ASSERT_OK(index.Publish(Entry("s/o", 2, 300), 1));
  auto latest = *index.Get("s/o", std::nullopt);
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->version, 2u);
  EXPECT_EQ(latest->bytes, 300);
  EXPECT_EQ((*index.Get("s/o", 1))->version, 1u);
  EXPECT_FALSE(index.Get("s/o", 7)->has_value());
  auto stats = *index.Stats();
  EXPECT_EQ(stats.keys, 1);
  EXPECT_EQ(stats.versions, 2);
  EXPECT_EQ(stats.bytes, 400);
}

TYPED_TEST(IndexConformance, PublishIsCompareAndSet) {
  auto& index = this->index_;
  ASSERT_OK(index.Publish(Entry("s/o", 1), 0));
  auto conflict = index.Publish(Entry("s/o", 1), 0);
  EXPECT_TRUE(conflict.IsAlreadyExists()) << conflict;
  EXPECT_NE(conflict.message().find("version conflict"), std::string::npos);
  EXPECT_TRUE(index.Publish(Entry("s/o", 3), 2).IsAlreadyExists());
  EXPECT_TRUE(index.Publish(Entry("new/k", 2), 1).IsAlreadyExists());
  EXPECT_FALSE(index.Get("new/k", std::nullopt)->has_value()) << "failed publish left a key";
  EXPECT_EQ(index.Stats()->keys, 1);
}

TYPED_TEST(IndexConformance, ConcurrentPublishersGetDistinctVersions) {
  auto& index = this->index_;
  std::atomic<int> won{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        while (true) {
          uint64_t latest = *index.LatestVersion("hot/key");
          if (index.Publish(Entry("hot/key", latest + 1), latest).ok()) {
            ++won;
            break;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won.load(), 1600);
  EXPECT_EQ(*index.LatestVersion("hot/key"), 1600u);
}

TYPED_TEST(IndexConformance, RemoveTrimListAndPrefixes) {
  auto& index = this->index_;
  for (uint64_t v = 1; v <= 4; ++v) ASSERT_OK(index.Publish(Entry("s1/a", v), v - 1));
  ASSERT_OK(index.Publish(Entry("s1/b", 1), 0));
  ASSERT_OK(index.Publish(Entry("s10/a", 1), 0));
  ASSERT_OK(index.Publish(Entry("ns/s1/a", 1), 0));

  auto trimmed = *index.Trim("s1/a", 2);
  ASSERT_EQ(trimmed.size(), 2u);
  EXPECT_EQ(trimmed[0].version, 1u);
  EXPECT_EQ(trimmed[1].version, 2u);
  EXPECT_FALSE(index.Get("s1/a", 2)->has_value());
  EXPECT_TRUE(index.Get("s1/a", 3)->has_value());

  auto listed = *index.ListLatest("s1");
  ASSERT_EQ(listed.size(), 3u);  // plain string prefix: s1/a, s1/b, s10/a
  EXPECT_EQ(listed[0].version, 4u);
  auto under = *index.KeysUnder("s1");
  EXPECT_EQ(under, (std::vector<std::string>{"s1/a", "s1/b"}));

  auto removed = *index.Remove("s1/a");
  EXPECT_EQ(removed.size(), 2u);
  EXPECT_TRUE(index.Remove("s1/a")->empty());
  auto stats = *index.Stats();
  EXPECT_EQ(stats.keys, 3);
  EXPECT_EQ(stats.versions, 3);
}

TYPED_TEST(IndexConformance, DependentsAndTagsFollowTheLatestVersion) {
  auto& index = this->index_;
  auto a1 = Entry("s/a", 1);
  a1.depends_on = {"s/base"};
  a1.tags = {"table:events"};
  ASSERT_OK(index.Publish(a1, 0));
  auto b1 = Entry("s/b", 1);
  b1.depends_on = {"s/base", "s/a"};
  ASSERT_OK(index.Publish(b1, 0));
  EXPECT_EQ(*index.Dependents("s/base"), (std::vector<std::string>{"s/a", "s/b"}));
  EXPECT_EQ(*index.Dependents("s/a"), std::vector<std::string>{"s/b"});
  EXPECT_EQ(*index.KeysWithTag("table:events"), std::vector<std::string>{"s/a"});
  auto a2 = Entry("s/a", 2);  // the new version depends on nothing
  ASSERT_OK(index.Publish(a2, 1));
  EXPECT_EQ(*index.Dependents("s/base"), std::vector<std::string>{"s/b"});
  EXPECT_TRUE(index.KeysWithTag("table:events")->empty());
  ASSERT_OK(index.Remove("s/b").status());
  EXPECT_TRUE(index.Dependents("s/base")->empty());
  EXPECT_TRUE(index.Dependents("s/a")->empty());
}

TEST(Manifest, RoundTripsAndRejectsDamage) {
  auto e = Entry("ns/s/o", 42, 123456789);
  e.depends_on = {"s/x", "@q/abc"};
  e.tags = {"t1"};
  e.cost_ms = 77;
  ASSERT_OK_AND_ASSIGN(auto back, ManifestFromJson(ManifestToJson(e)));
  EXPECT_EQ(back.depends_on, e.depends_on);
  EXPECT_EQ(back.tags, e.tags);
  EXPECT_EQ(back.cost_ms, 77);
  EXPECT_EQ(back.key, e.key);
  EXPECT_EQ(back.version, 42u);
  EXPECT_EQ(back.blob, e.blob);
  EXPECT_EQ(back.bytes, e.bytes);
  EXPECT_EQ(back.checksum, e.checksum);
  EXPECT_EQ(back.created_ms, e.created_ms);
  EXPECT_TRUE(ManifestFromJson("{\"format\":1}").status().IsInvalid());
  EXPECT_TRUE(ManifestFromJson("{trunc").status().IsInvalid());
  EXPECT_TRUE(ManifestFromJson("{\"format\":99}").status().IsInvalid());
  EXPECT_EQ(ManifestBlobName("s/o", 3), "manifests/s/o/@v/00000000000000000003.json");
}

}  // namespace
}  // namespace quiver
