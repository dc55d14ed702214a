// The Index conformance suite on the embedded index, and the embedded index's own cases.
#include <malloc.h>

#include <algorithm>
#include <iostream>

#include <gtest/gtest.h>

#include "index/embedded_index.h"
#include "index/index_test_util.h"

namespace quiver {
namespace {

class EmbeddedIndexTest : public IndexConformanceTest {
 protected:
  std::shared_ptr<Index> OpenHandle() override {
    if (!shared_) shared_ = std::make_shared<EmbeddedIndex>(clock_);
    return shared_;
  }
  std::shared_ptr<Index> OpenEmptyIndex() override {
    return std::make_shared<EmbeddedIndex>(clock_);
  }
  void WaitForLeaseExpiry(const std::string&, int64_t ttl_ms) override {
    clock_->Advance(ttl_ms);
  }

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::shared_ptr<EmbeddedIndex> shared_;
};

QUIVER_INDEX_CONFORMANCE_TESTS(EmbeddedIndexTest)

TEST(EmbeddedIndex, ASnapshotOlderThanForgottenGenerationsIsRefused) {
  EmbeddedIndex index(Clock::System(), /*max_generations=*/4);
  ASSERT_OK(index.MarkRebuilt());
  auto before = *index.Snapshot();
  // Five other names bumped: the table forgets the oldest, so it cannot vouch for `before`.
  for (int i = 0; i < 5; ++i) ASSERT_OK(index.BumpAndCollect({"k" + std::to_string(i)}, {}));
  PublishRequest r;
  r.entry = IndexConformanceTest::Entry("s/o", 1);
  r.watched = {KeyGeneration("unrelated/key")};
  r.since = before;
  EXPECT_EQ(index.Publish(r)->refusal, Refusal::kStaleGeneration);
  r.since = *index.Snapshot();
  EXPECT_TRUE(index.Publish(r)->published());
}

// The footprint the one-node scale goal (at most 300 bytes of RSS per entry at a million
// entries) rests on: the heap each more key with one version of Quiver's own names costs,
// counted by the allocator (its chunk headers and rounding included).
TEST(EmbeddedIndex, AKeyWithOneVersionCostsUnder270BytesOfHeap) {
  constexpr int kKeys = 50000;
  std::vector<EntryMeta> entries;
  entries.reserve(kKeys);
  for (int i = 0; i < kKeys; ++i) {
    entries.push_back(IndexConformanceTest::OwnNamesEntry(
        "s" + std::to_string(i / 1000) + "/o" + std::to_string(i % 1000), 1, 1763765000000 + i));
  }
  EmbeddedIndex index;
  ASSERT_OK(index.MarkRebuilt());
  const size_t before = mallinfo2().uordblks;
  for (const auto& e : entries) {
    PublishRequest r;
    r.entry = e;
    ASSERT_TRUE(index.Publish(r)->published());
  }
  const double per_key = static_cast<double>(mallinfo2().uordblks - before) / kKeys;
  EXPECT_LT(per_key, 270) << "bytes of heap per key";
  std::cout << "heap per key with one version: " << per_key << " bytes\n";
  ASSERT_OK_AND_ASSIGN(auto back, index.Get(entries[123].key, std::nullopt));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(EntryToJson(*back), EntryToJson(entries[123]));
}

// A restart loads the journal's entries with the saved access histories: exported in key
// order (walked beside the entries) and, from files of earlier releases, in any order.
TEST(EmbeddedIndex, LoadRecoveredRestoresHistoriesSavedInAnyOrder) {
  for (bool reversed : {false, true}) {
    EmbeddedIndex source;
    ASSERT_OK(source.MarkRebuilt());
    std::vector<EntryMeta> entries;
    for (const char* key : {"a/1", "a/2", "b/1", "c/9"}) {
      PublishRequest r;
      r.entry = IndexConformanceTest::Entry(key, 1);
      ASSERT_TRUE(source.Publish(r)->published());
      entries.push_back(r.entry);
    }
    ASSERT_OK(source.Touch({{"b/1", 5}, {"a/1", 2}}, 1234, ScoringPolicy{}));
    UsageSnapshot usage = source.ExportUsage();
    ASSERT_TRUE(std::is_sorted(usage.records.begin(), usage.records.end(),
                               [](const auto& a, const auto& b) { return a.key < b.key; }));
    if (reversed) std::reverse(usage.records.begin(), usage.records.end());
    std::vector<RecoveredEntry> recovered;
    for (const auto& e : entries) recovered.push_back({e.key, PackedEntry::Pack(e)});
    EmbeddedIndex loaded;
    ASSERT_OK_AND_ASSIGN(int64_t restored,
                         loaded.LoadRecovered(std::move(recovered), ScoringPolicy{}, &usage));
    EXPECT_EQ(restored, 4) << "reversed: " << reversed;
    for (const char* key : {"a/1", "a/2", "b/1", "c/9"}) {
      auto before = source.Usage(key)->value();
      auto after = loaded.Usage(key)->value();
      EXPECT_EQ(after.accesses, before.accesses) << key << " reversed: " << reversed;
      EXPECT_EQ(after.last_access_ms, before.last_access_ms) << key;
      EXPECT_DOUBLE_EQ(after.score, before.score) << key;
    }
    EXPECT_EQ(loaded.usage_tick(), source.usage_tick());
  }
}

TEST(Manifest, RoundTripsAndRejectsDamage) {
  auto e = IndexConformanceTest::Entry("ns/s/o", 42, 123456789);
  e.depends_on = {"s/x", "@q/abc"};
  e.tags = {"t1"};
  e.cost_ms = 77;
  ASSERT_OK_AND_ASSIGN(auto back, EntryFromJson(EntryToJson(e)));
  EXPECT_EQ(back.depends_on, e.depends_on);
  EXPECT_EQ(back.tags, e.tags);
  EXPECT_EQ(back.cost_ms, 77);
  EXPECT_EQ(back.key, e.key);
  EXPECT_EQ(back.version, 42u);
  EXPECT_EQ(back.blob, e.blob);
  EXPECT_EQ(back.manifest, e.manifest);
  EXPECT_EQ(back.node, e.node);
  EXPECT_EQ(back.bytes, e.bytes);
  EXPECT_EQ(back.checksum, e.checksum);
  EXPECT_EQ(back.created_ms, e.created_ms);
  EXPECT_TRUE(EntryFromJson("{\"format\":2}").status().IsInvalid());
  EXPECT_TRUE(EntryFromJson("{trunc").status().IsInvalid());
  EXPECT_TRUE(EntryFromJson("{\"format\":99}").status().IsInvalid());
}

TEST(Manifest, NamesAreUniqueSortByVersionAndParse) {
  auto a = NewManifestName("s/o", 3, "node:1");
  auto b = NewManifestName("s/o", 3, "node:1");
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("manifests/s/o/@v/00000000000000000003-node%3A1-", 0), 0u) << a;
  EXPECT_LT(NewManifestName("s/o", 9, "z"), NewManifestName("s/o", 10, "a"));
  auto parsed = ParseManifestName(a);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->key, "s/o");
  EXPECT_EQ(parsed->version, 3u);
  // The layout of earlier releases still parses.
  auto old = ParseManifestName("manifests/ns/s/o/@v/00000000000000000012.json");
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->key, "ns/s/o");
  EXPECT_EQ(old->version, 12u);
  EXPECT_FALSE(ParseManifestName("manifests/s/o/@v/12.json").has_value());
  EXPECT_FALSE(ParseManifestName("data/00/x.arrows").has_value());
  EXPECT_NE(NewDataBlobName("n"), NewDataBlobName("n"));
  EXPECT_EQ(SanitizeNodeId("host.example:8815/x"), "host.example%3A8815%2Fx");
  EXPECT_NE(SanitizeNodeId("a:1"), SanitizeNodeId("a_1"));
  // Long ids that share their first 64 characters still get tags of their own, 64 long.
  const std::string stem(70, 'n');
  EXPECT_NE(SanitizeNodeId(stem + "-a"), SanitizeNodeId(stem + "-b"));
  EXPECT_EQ(SanitizeNodeId(stem + "-a").size(), 64u);
  EXPECT_EQ(SanitizeNodeId(stem + "-a"), SanitizeNodeId(stem + "-a"));
  // The cut never splits an %XX escape: 15 whole escapes of '/', then the hash.
  const std::string slashes = SanitizeNodeId(std::string(40, '/'));
  EXPECT_EQ(slashes.find("%h"), 45u);
  EXPECT_EQ(slashes.substr(0, 6), "%2F%2F");
  const std::string data = NewDataBlobName("n");
  EXPECT_EQ(data.substr(5, 3), data.substr(data.size() - 39, 2) + "/");  // data/xx/n-xx...
}

}  // namespace
}  // namespace quiver
