// The Index conformance suite: every Index implementation must pass all of it.
//
// Modelled on Arrow's filesystem/test_util.h: derive a fixture from IndexConformanceTest,
// implement OpenHandle() (and the capability hooks), then instantiate every case with
// QUIVER_INDEX_CONFORMANCE_TESTS(MyFixture). Two handles opened in one test are two nodes of
// one cache when the implementation is shared, so the concurrency cases race across "nodes"
// there and across threads of one node otherwise.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/testing.h"
#include "index/index.h"
#include "index/index_test_entries.h"

namespace quiver {

class IndexConformanceTest : public ::testing::Test, public IndexTestEntries {
 protected:
  /// \brief A new handle on the index under test (one index per test).
  virtual std::shared_ptr<Index> OpenHandle() = 0;
  /// \brief Return once lease `name` granted for `ttl_ms` has expired (advance a clock, or
  /// wait for the server to expire it).
  virtual void WaitForLeaseExpiry(const std::string& name, int64_t ttl_ms) = 0;
  /// \brief A handle on a new, empty index that was not rebuilt yet.
  virtual std::shared_ptr<Index> OpenEmptyIndex() = 0;
  /// \brief Capability: an index not marked rebuilt refuses publishes (IndexUnavailable),
  /// because other nodes may be rebuilding it.
  virtual bool publishes_wait_for_rebuild() const { return false; }

  void SetUp() override {
    index_ = OpenHandle();
    ASSERT_OK(index_->MarkRebuilt());
  }

  void TestPublishGetLatestAndVersions() {
    auto& index = *index_;
    EXPECT_FALSE(index.Get("s/o", std::nullopt)->has_value());
    auto v1 = Entry("s/o", 1);
    auto v2 = Entry("s/o", 2, 300);
    v2.depends_on = {"x/y"};
    v2.tags = {"t"};
    v2.base_version = 1;  // a patch of version 1 (object_patch.h)
    PublishRequest r1 = Request(v1);
    r1.keep_versions = 3;
    ASSERT_TRUE(index.Publish(r1)->published());
    PublishRequest r2 = Request(v2, &v1);
    r2.keep_versions = 3;
    ASSERT_TRUE(index.Publish(r2)->published());
    ASSERT_OK_AND_ASSIGN(auto latest, index.Get("s/o", std::nullopt));
    ASSERT_TRUE(latest.has_value());
    EXPECT_EQ(latest->version, 2u);
    EXPECT_EQ(latest->bytes, 300);
    EXPECT_EQ(latest->blob, v2.blob);
    EXPECT_EQ(latest->manifest, v2.manifest);
    EXPECT_EQ(latest->depends_on, v2.depends_on);
    EXPECT_EQ(latest->tags, v2.tags);
    EXPECT_EQ(latest->base_version, 1u);
    EXPECT_EQ((*index.Get("s/o", 1))->blob, v1.blob);
    EXPECT_EQ((*index.Get("s/o", 1))->base_version, 0u);
    EXPECT_FALSE(index.Get("s/o", 7)->has_value());
    ASSERT_OK_AND_ASSIGN(auto many, index.GetMany({{"s/o", 1}, {"s/o", 5}, {"no/pe", 1}}));
    ASSERT_EQ(many.size(), 3u);
    EXPECT_TRUE(many[0].has_value() && many[0]->version == 1);
    EXPECT_FALSE(many[1].has_value());
    EXPECT_FALSE(many[2].has_value());
    ASSERT_OK_AND_ASSIGN(auto stats, index.Stats());
    EXPECT_EQ(stats.keys, 1);
    EXPECT_EQ(stats.versions, 2);
    EXPECT_EQ(stats.bytes, 400);
  }

  void TestPublishIsCompareAndSet() {
    auto& index = *index_;
    auto v1 = Entry("s/o", 1);
    ASSERT_TRUE(index.Publish(Request(v1))->published());
    ASSERT_OK_AND_ASSIGN(auto again, index.Publish(Request(Entry("s/o", 1))));
    EXPECT_EQ(again.refusal, Refusal::kVersionConflict);
    EXPECT_EQ(again.current_version, 1u);
    auto skip = Request(Entry("s/o", 3), &v1);
    skip.expected_version = 2;
    EXPECT_EQ(index.Publish(skip)->refusal, Refusal::kVersionConflict);
    auto absent = Request(Entry("new/k", 2));
    absent.expected_version = 1;
    EXPECT_EQ(index.Publish(absent)->refusal, Refusal::kVersionConflict);
    EXPECT_FALSE(index.Get("new/k", std::nullopt)->has_value()) << "a refusal left a key";
    EXPECT_EQ(index.Stats()->keys, 1);
    // Deleted and recreated at the same version number: the blob tells them apart.
    ASSERT_OK(index.Remove(RemoveRequest("s/o")).status());
    auto recreated = Entry("s/o", 1, 55);
    ASSERT_TRUE(index.Publish(Request(recreated))->published());
    EXPECT_EQ(index.Publish(Request(Entry("s/o", 2), &v1))->refusal, Refusal::kVersionConflict);
    EXPECT_TRUE(index.Publish(Request(Entry("s/o", 2), &recreated))->published());
  }

  void TestConcurrentPublishersGetDistinctVersions() {
    std::vector<std::shared_ptr<Index>> nodes = {index_, OpenHandle()};
    std::atomic<int> won{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        Index* index = nodes[t % 2].get();
        for (int i = 0; i < 40; ++i) {
          while (true) {
            auto outcome = PublishNext(index, Entry("hot/key", 0, 10 + t));
            ASSERT_TRUE(outcome.ok()) << outcome.status();
            if (outcome->published()) break;
            ASSERT_EQ(outcome->refusal, Refusal::kVersionConflict);
          }
          ++won;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(won.load(), 320);
    EXPECT_EQ((*index_->Get("hot/key", std::nullopt))->version, 320u);
    EXPECT_EQ(index_->Stats()->versions, 1) << "keep_versions 1 trims every older version";
  }

  void TestRemoveTrimListAndPrefixes() {
    auto& index = *index_;
    PublishRequest keep4;
    keep4.keep_versions = 4;
    for (int v = 1; v <= 4; ++v) ASSERT_TRUE(PublishNext(&index, Entry("s1/a", 0), keep4)->published());
    ASSERT_TRUE(PublishNext(&index, Entry("s1/b", 0))->published());
    ASSERT_TRUE(PublishNext(&index, Entry("s10/a", 0))->published());
    ASSERT_TRUE(PublishNext(&index, Entry("ns/s1/a", 0))->published());

    ASSERT_OK_AND_ASSIGN(auto trimmed, index.Trim("s1/a", 2));
    ASSERT_EQ(trimmed.size(), 2u);
    EXPECT_EQ(trimmed[0].version, 1u);
    EXPECT_EQ(trimmed[1].version, 2u);
    EXPECT_FALSE(index.Get("s1/a", 2)->has_value());
    EXPECT_TRUE(index.Get("s1/a", 3)->has_value());
    EXPECT_EQ((*index.Usage("s1/a"))->bytes, 200) << "trimming frees the key's bytes";

    ASSERT_OK_AND_ASSIGN(auto listed, index.ListLatest("s1"));
    ASSERT_EQ(listed.size(), 3u);  // plain string prefix: s1/a, s1/b, s10/a
    EXPECT_EQ(listed[0].latest.key, "s1/a");
    EXPECT_EQ(listed[0].latest.version, 4u);
    EXPECT_EQ(listed[0].usage.bytes, 200);
    EXPECT_EQ(*index.KeysUnder("s1"), (std::vector<std::string>{"s1/a", "s1/b"}));

    ASSERT_OK_AND_ASSIGN(auto removed, index.Remove(RemoveRequest("s1/a")));
    ASSERT_EQ(removed.size(), 2u);
    EXPECT_EQ(removed[0].version, 3u) << "oldest first";
    EXPECT_TRUE(index.Remove(RemoveRequest("s1/a"))->empty());
    ASSERT_OK_AND_ASSIGN(auto stats, index.Stats());
    EXPECT_EQ(stats.keys, 3);
    EXPECT_EQ(stats.versions, 3);
    EXPECT_EQ(stats.bytes, 300);
  }

  void TestConditionalRemove() {
    auto& index = *index_;
    auto q = Entry("q/r", 1);
    q.expires_ms = 5000;
    q.query = "{}";
    ASSERT_TRUE(index.Publish(Request(q))->published());
    RemoveRequest early("q/r");
    early.only_if_expired_at = 4999;
    EXPECT_TRUE(index.Remove(early)->empty());
    RemoveRequest other_blob("q/r");
    other_blob.only_if_blob = "data/00/someone-else";
    EXPECT_TRUE(index.Remove(other_blob)->empty());
    EXPECT_TRUE(index.Get("q/r", std::nullopt)->has_value());
    RemoveRequest late("q/r");
    late.only_if_expired_at = 5000;
    late.only_if_blob = q.blob;
    EXPECT_EQ(index.Remove(late)->size(), 1u);
    EXPECT_FALSE(index.Get("q/r", std::nullopt)->has_value());
  }

  void TestDependentsAndTagsFollowTheLatestVersion() {
    auto& index = *index_;
    auto a1 = Entry("s/a", 1);
    a1.depends_on = {"s/base"};
    a1.tags = {"table:events"};
    ASSERT_TRUE(index.Publish(Request(a1))->published());
    auto b1 = Entry("s/b", 1);
    b1.depends_on = {"s/base", "s/a"};
    ASSERT_TRUE(index.Publish(Request(b1))->published());
    EXPECT_EQ(*index.Dependents("s/base"), (std::vector<std::string>{"s/a", "s/b"}));
    EXPECT_EQ(*index.Dependents("s/a"), std::vector<std::string>{"s/b"});
    EXPECT_EQ(*index.KeysWithTag("table:events"), std::vector<std::string>{"s/a"});
    auto a2 = Entry("s/a", 2);  // the new version depends on nothing
    ASSERT_TRUE(index.Publish(Request(a2, &a1))->published());
    EXPECT_EQ(*index.Dependents("s/base"), std::vector<std::string>{"s/b"});
    EXPECT_TRUE(index.KeysWithTag("table:events")->empty());
    ASSERT_OK(index.Remove(RemoveRequest("s/b")).status());
    EXPECT_TRUE(index.Dependents("s/base")->empty());
    EXPECT_TRUE(index.Dependents("s/a")->empty());
  }

  void TestGenerationsRefuseWhatWasComputedFromStaleInputs() {
    auto& index = *index_;
    auto d1 = Entry("d/one", 1);
    d1.depends_on = {"s/base"};
    d1.tags = {"tbl"};
    ASSERT_TRUE(index.Publish(Request(d1))->published());
    ASSERT_OK_AND_ASSIGN(auto before, index.Snapshot());
    // Invalidating the base bumps it and returns what was derived from it.
    ASSERT_OK_AND_ASSIGN(auto collected, index.BumpAndCollect({"s/base"}, {}));
    EXPECT_EQ(collected, std::vector<std::string>{"d/one"});
    // A put computed from the base before the bump is refused, naming it.
    auto d2 = Request(Entry("d/two", 1));
    d2.entry.depends_on = {"s/base"};
    d2.watched = {KeyGeneration("s/base")};
    d2.since = before;
    ASSERT_OK_AND_ASSIGN(auto refused, index.Publish(d2));
    EXPECT_EQ(refused.refusal, Refusal::kStaleGeneration);
    EXPECT_EQ(refused.detail, "s/base");
    EXPECT_FALSE(index.Get("d/two", std::nullopt)->has_value());
    // One computed after it is accepted.
    ASSERT_OK_AND_ASSIGN(d2.since, index.Snapshot());
    EXPECT_TRUE(index.Publish(d2)->published());
    // Tags: invalidating a tag returns its keys and refuses older tagged puts.
    ASSERT_OK_AND_ASSIGN(auto tag_snapshot, index.Snapshot());
    EXPECT_EQ(*index.BumpAndCollect({}, {"tbl"}), std::vector<std::string>{"d/one"});
    auto d3 = Request(Entry("d/three", 1));
    d3.watched = {TagGeneration("tbl")};
    d3.since = tag_snapshot;
    EXPECT_EQ(index.Publish(d3)->refusal, Refusal::kStaleGeneration);
    // A removal with bump_key counts as a change of the key; a new object version too.
    ASSERT_OK_AND_ASSIGN(auto s3, index.Snapshot());
    ASSERT_OK(index.Remove(RemoveRequest("no/such", true)).status());
    auto d4 = Request(Entry("d/four", 1));
    d4.watched = {KeyGeneration("no/such")};
    d4.since = s3;
    EXPECT_EQ(index.Publish(d4)->refusal, Refusal::kStaleGeneration);
    ASSERT_OK_AND_ASSIGN(auto s4, index.Snapshot());
    auto next = Request(Entry("d/one", 2), &d1);
    next.bump_key = true;
    ASSERT_TRUE(index.Publish(next)->published());
    d4.watched = {KeyGeneration("d/one")};
    d4.since = s4;
    EXPECT_EQ(index.Publish(d4)->refusal, Refusal::kStaleGeneration);
  }

  // A publish racing invalidation: whichever comes first, nothing computed from the old base
  // survives. Every entry left at the end was computed after the base's last bump.
  void TestPublishRacingInvalidationNeverLeavesStaleEntries() {
    std::shared_ptr<Index> writer = index_, invalidator = OpenHandle();
    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::map<std::string, uint64_t> snapshots;  // published key -> its snapshot
    std::thread put_thread([&] {
      for (int i = 0; !stop; ++i) {
        auto since = writer->Snapshot();
        ASSERT_TRUE(since.ok());
        auto r = Request(Entry("derived/k" + std::to_string(i), 1));
        r.entry.depends_on = {"s/base"};
        r.watched = {KeyGeneration("s/base")};
        r.since = *since;
        auto outcome = writer->Publish(r);
        ASSERT_TRUE(outcome.ok()) << outcome.status();
        if (outcome->published()) {
          std::lock_guard<std::mutex> lock(mutex);
          snapshots[r.entry.key] = since->counter;
        }
      }
    });
    uint64_t last_bump = 0;
    auto published = [&] {
      std::lock_guard<std::mutex> lock(mutex);
      return snapshots.size();
    };
    // Until both sides did enough for the race to matter (bounded in time).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (int round = 0; (round < 60 || published() < 60) &&
                        std::chrono::steady_clock::now() < deadline;
         ++round) {
      ASSERT_OK_AND_ASSIGN(auto collected, invalidator->BumpAndCollect({"s/base"}, {}));
      ASSERT_OK_AND_ASSIGN(auto after, invalidator->Snapshot());
      last_bump = after.counter;  // nobody else bumps: this is the base's generation
      for (const auto& key : collected) ASSERT_OK(invalidator->Remove(RemoveRequest(key, true)).status());
    }
    stop = true;
    put_thread.join();
    ASSERT_OK_AND_ASSIGN(auto left, index_->ListLatest("derived/"));
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_GT(snapshots.size(), 0u) << "no put ever won; the race was not exercised";
    for (const auto& item : left) {
      ASSERT_TRUE(snapshots.count(item.latest.key));
      EXPECT_GE(snapshots[item.latest.key], last_bump)
          << item.latest.key << " was computed before the last invalidation but survived";
    }
  }

  void TestLeasesAreExclusiveAndFenced() {
    auto& index = *index_;
    auto other = OpenHandle();
    ASSERT_OK_AND_ASSIGN(auto first, index.AcquireLease("fill:k", "node-a", "grpc://a:1", 60000));
    ASSERT_TRUE(first.acquired);
    ASSERT_OK_AND_ASSIGN(auto second, other->AcquireLease("fill:k", "node-b", "grpc://b:1", 60000));
    EXPECT_FALSE(second.acquired);
    EXPECT_EQ(second.holder.owner, "node-a");
    EXPECT_EQ(second.holder.endpoint, "grpc://a:1");
    EXPECT_EQ(second.holder.token, first.token);
    EXPECT_TRUE(*index.RenewLease({"fill:k", first.token}, 60000));
    EXPECT_FALSE(*other->RenewLease({"fill:k", first.token + 1000}, 60000));
    ASSERT_OK(other->ReleaseLease({"fill:k", first.token + 1000}));  // not the holder: no-op
    EXPECT_TRUE(index.GetLease("fill:k")->has_value());
    ASSERT_OK(index.ReleaseLease({"fill:k", first.token}));
    EXPECT_FALSE(index.GetLease("fill:k")->has_value());
    ASSERT_OK_AND_ASSIGN(auto third, other->AcquireLease("fill:k", "node-b", "grpc://b:1", 60000));
    ASSERT_TRUE(third.acquired);
    EXPECT_GT(third.token, first.token) << "fencing tokens only grow";
    // The old holder's publish is fenced; the new holder's publishes and releases the lease.
    auto fenced = Request(Entry("@q/k", 1));
    fenced.lease = LeaseRef{"fill:k", first.token};
    ASSERT_OK_AND_ASSIGN(auto refused, index.Publish(fenced));
    EXPECT_EQ(refused.refusal, Refusal::kLeaseLost);
    EXPECT_NE(refused.detail.find("node-b"), std::string::npos) << refused.detail;
    fenced.lease->token = third.token;
    EXPECT_TRUE(other->Publish(fenced)->published());
    EXPECT_FALSE(index.GetLease("fill:k")->has_value());
  }

  void TestAnExpiredLeaseGoesToTheNextAndFencesTheOld() {
    auto& index = *index_;
    ASSERT_OK_AND_ASSIGN(auto old, index.AcquireLease("fill:slow", "node-a", "", 300));
    ASSERT_TRUE(old.acquired);
    WaitForLeaseExpiry("fill:slow", 300);
    EXPECT_FALSE(*index.RenewLease({"fill:slow", old.token}, 300));
    ASSERT_OK_AND_ASSIGN(auto next, OpenHandle()->AcquireLease("fill:slow", "node-b", "", 60000));
    ASSERT_TRUE(next.acquired);
    EXPECT_GT(next.token, old.token);
    // The new holder announces a new version (bumping the key): the old holder is still
    // told first that it was fenced.
    ASSERT_OK_AND_ASSIGN(auto before, index.Snapshot());
    ASSERT_OK(index.BumpAndCollect({"@q/slow"}, {}).status());
    auto late = Request(Entry("@q/slow", 1));
    late.lease = LeaseRef{"fill:slow", old.token};
    late.watched = {KeyGeneration("@q/slow")};
    late.since = before;
    EXPECT_EQ(index.Publish(late)->refusal, Refusal::kLeaseLost);
  }

  void TestBudgetRefusesAndAllowsAtMostOneOver() {
    auto& index = *index_;
    PublishRequest limited;
    limited.budget = BudgetLimits{250, 0, false};
    EXPECT_TRUE(PublishNext(&index, Entry("b/1", 0), limited)->published());
    EXPECT_TRUE(PublishNext(&index, Entry("b/2", 0), limited)->published());
    ASSERT_OK_AND_ASSIGN(auto full, PublishNext(&index, Entry("b/3", 0), limited));
    EXPECT_EQ(full.refusal, Refusal::kOverBudget);
    EXPECT_FALSE(index.Get("b/3", std::nullopt)->has_value());
    // A new version replacing an old one (keep 1) frees the old one's bytes.
    EXPECT_TRUE(PublishNext(&index, Entry("b/2", 0, 120), limited)->published());
    limited.budget->allow_one_over = true;
    EXPECT_TRUE(PublishNext(&index, Entry("b/3", 0), limited)->published());  // 320 > 250
    EXPECT_EQ(PublishNext(&index, Entry("b/4", 0), limited)->refusal, Refusal::kOverBudget)
        << "already over: not even one more";
    ASSERT_OK(index.Remove(RemoveRequest("b/3")).status());
    PublishRequest counted;
    counted.budget = BudgetLimits{1 << 20, 3, false};
    EXPECT_TRUE(PublishNext(&index, Entry("b/5", 0), counted)->published());
    EXPECT_EQ(PublishNext(&index, Entry("b/6", 0), counted)->refusal, Refusal::kOverBudget);
    EXPECT_TRUE(PublishNext(&index, Entry("b/5", 0), counted)->published())
        << "a new version of a key does not count as a new entry";
  }

  // Totals of one tenant's entries (EntryTenant), and its budget.
  void ExpectTenant(const std::string& tenant, int64_t keys, int64_t bytes) {
    ASSERT_OK_AND_ASSIGN(auto t, index_->TenantStats(tenant));
    EXPECT_EQ(t.keys, keys) << tenant;
    EXPECT_EQ(t.bytes, bytes) << tenant;
  }

  void TestTenantTotalsAndBudgets() {
    auto& index = *index_;
    PublishRequest kept;
    kept.keep_versions = 2;
    ASSERT_TRUE(PublishNext(&index, Entry("acme/s/a", 0, 100), kept)->published());
    ASSERT_TRUE(PublishNext(&index, Entry("acme/s/b", 0, 50), kept)->published());
    ASSERT_TRUE(PublishNext(&index, Entry("zeta/s/a", 0, 70), kept)->published());
    ASSERT_TRUE(PublishNext(&index, Entry("acme/plain", 0, 30), kept)->published());
    ExpectTenant("acme", 2, 150);  // "acme/plain" has two segments: nobody's
    ExpectTenant("zeta", 1, 70);
    ExpectTenant("nobody", 0, 0);
    // Kept versions count; trimmed and removed ones are given back.
    ASSERT_TRUE(PublishNext(&index, Entry("acme/s/a", 0, 40), kept)->published());
    ExpectTenant("acme", 2, 190);
    ASSERT_OK(index.Trim("acme/s/a", 1).status());
    ExpectTenant("acme", 2, 90);

    // A tenant's budget refuses past its own limits while the global one has room, and
    // leaves other tenants alone.
    PublishRequest limited;
    limited.budget = BudgetLimits{1 << 20, 0, false};
    limited.tenant_budget = BudgetLimits{120, 0, false};
    ASSERT_OK_AND_ASSIGN(auto refused, PublishNext(&index, Entry("acme/s/c", 0, 40), limited));
    EXPECT_EQ(refused.refusal, Refusal::kOverBudget);
    EXPECT_NE(refused.detail.find("tenant 'acme'"), std::string::npos) << refused.detail;
    EXPECT_FALSE(index.Get("acme/s/c", std::nullopt)->has_value());
    EXPECT_TRUE(PublishNext(&index, Entry("zeta/s/b", 0, 40), limited)->published());
    EXPECT_TRUE(PublishNext(&index, Entry("acme/other", 0, 500), limited)->published())
        << "a two-segment key is not a tenant's";
    // Replacing a version (keep 1) frees its bytes first.
    EXPECT_TRUE(PublishNext(&index, Entry("acme/s/b", 0, 70), limited)->published());
    ExpectTenant("acme", 2, 110);
    // max_entries per tenant: a new key is refused, a new version of a key is not.
    limited.tenant_budget = BudgetLimits{1 << 20, 2, false};
    EXPECT_EQ(PublishNext(&index, Entry("acme/s/c", 0, 1), limited)->refusal,
              Refusal::kOverBudget);
    EXPECT_TRUE(PublishNext(&index, Entry("acme/s/b", 0, 60), limited)->published());
    // A writer's last attempt may go one entry over, not more.
    limited.tenant_budget = BudgetLimits{120, 0, true};
    EXPECT_TRUE(PublishNext(&index, Entry("acme/s/c", 0, 40), limited)->published());
    EXPECT_EQ(PublishNext(&index, Entry("acme/s/d", 0, 1), limited)->refusal,
              Refusal::kOverBudget);
    ExpectTenant("acme", 3, 140);
    ASSERT_OK(index.Remove(RemoveRequest("acme/s/c")).status());
    ASSERT_OK(index.Remove(RemoveRequest("acme/s/a")).status());
    ExpectTenant("acme", 1, 60);
    ASSERT_OK(index.Remove(RemoveRequest("acme/s/b")).status());
    ExpectTenant("acme", 0, 0);
    ExpectTenant("zeta", 2, 110);
  }

  // A query result counts against the tenant it ran for (EntryMeta::tenant, not its key)
  // through every change and a rebuild; a shared one counts against no tenant.
  void TestQueryResultsCountForTheirTenant() {
    auto& index = *index_;
    PublishRequest kept;
    kept.keep_versions = 2;
    const auto mine = ResultEntry('a', "acme", 0, 100);
    ASSERT_TRUE(PublishNext(&index, mine, kept)->published());
    ASSERT_TRUE(PublishNext(&index, ResultEntry('b', "", 0, 70), kept)->published());
    ASSERT_TRUE(PublishNext(&index, Entry("acme/s/a", 0, 50), kept)->published());
    ExpectTenant("acme", 2, 150);
    ASSERT_OK_AND_ASSIGN(auto got, index.Get(mine.key, std::nullopt));
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->tenant, "acme");
    // The tenant's budget refuses a result past it, naming the tenant.
    PublishRequest limited;
    limited.tenant_budget = BudgetLimits{200, 0, false};
    const auto more = ResultEntry('c', "acme", 0, 60);
    ASSERT_OK_AND_ASSIGN(auto refused, PublishNext(&index, more, limited));
    EXPECT_EQ(refused.refusal, Refusal::kOverBudget);
    EXPECT_NE(refused.detail.find("tenant 'acme'"), std::string::npos) << refused.detail;
    EXPECT_FALSE(index.Get(more.key, std::nullopt)->has_value());
    // Kept versions count; trimmed and removed ones are given back.
    ASSERT_TRUE(PublishNext(&index, ResultEntry('a', "acme", 0, 40), kept)->published());
    ExpectTenant("acme", 2, 190);
    ASSERT_OK(index.Trim(mine.key, 1).status());
    ExpectTenant("acme", 2, 90);
    ASSERT_OK(index.Remove(RemoveRequest(mine.key)).status());
    ExpectTenant("acme", 1, 50);
    EXPECT_EQ(index.Stats()->keys, 2) << "the shared result and acme/s/a";
    // A rebuilt index counts restored results for their tenant again.
    auto rebuilt = OpenEmptyIndex();
    ASSERT_OK(rebuilt->Restore(ResultEntry('d', "zeta", 1, 30), {}));
    ASSERT_OK(rebuilt->Restore(ResultEntry('d', "zeta", 2, 20), {}));
    ASSERT_OK(rebuilt->MarkRebuilt());
    ASSERT_OK_AND_ASSIGN(auto zeta, rebuilt->TenantStats("zeta"));
    EXPECT_EQ(zeta.keys, 1);
    EXPECT_EQ(zeta.bytes, 50);
    ASSERT_OK(rebuilt->Remove(RemoveRequest(ResultEntry('d', "zeta", 2, 20).key)).status());
    ASSERT_OK_AND_ASSIGN(zeta, rebuilt->TenantStats("zeta"));
    EXPECT_EQ(zeta.keys, 0);
    EXPECT_EQ(zeta.bytes, 0);
  }

  void TestReadsAndCostsOrderEviction() {
    for (const char* policy : {"cost", "lru"}) {
      SCOPED_TRACE(policy);
      ScoringPolicy scoring{policy, 1000};
      std::string prefix = std::string("ev-") + policy + "/";
      PublishRequest r;
      r.scoring = scoring;
      for (const char* k : {"a", "b", "c"}) {
        ASSERT_TRUE(PublishNext(index_.get(), Entry(prefix + k, 0), r)->published());
      }
      ASSERT_OK(index_->Touch({{prefix + "a", 3}, {prefix + "c", 1}}, 1700000009999, scoring));
      ASSERT_OK(index_->Touch({{prefix + "c", 1}}, 1700000009999, scoring));
      ASSERT_OK_AND_ASSIGN(auto usage, index_->Usage(prefix + "a"));
      ASSERT_TRUE(usage.has_value());
      EXPECT_EQ(usage->accesses, 4u) << "the write and three reads";
      EXPECT_EQ(usage->last_access_ms, 1700000009999);
      EXPECT_EQ(usage->bytes, 100);
      ASSERT_OK_AND_ASSIGN(auto lowest, index_->LowestScored(0, 100));
      std::vector<std::string> order;
      for (const auto& [key, u] : lowest) {
        if (key.rfind(prefix, 0) == 0) order.push_back(key.substr(prefix.size()));
      }
      // b was only written. LRU: a was last read before c. Cost-aware (same cost and size):
      // a was read more often than c.
      auto expected = std::string(policy) == "lru" ? std::vector<std::string>{"b", "a", "c"}
                                                   : std::vector<std::string>{"b", "c", "a"};
      EXPECT_EQ(order, expected);
      ASSERT_OK_AND_ASSIGN(auto second, index_->LowestScored(1, 1));
      ASSERT_EQ(second.size(), 1u);
      EXPECT_EQ(second[0].first, lowest[1].first);
      for (const char* k : {"a", "b", "c"}) ASSERT_OK(index_->Remove(RemoveRequest(prefix + k)).status());
    }
  }

  void TestSettingsAreShared() {
    ASSERT_OK(index_->SetSettings({{"half_life", "50"}, {"cache_size", "1024"}}));
    ASSERT_OK(OpenHandle()->SetSettings({{"cache_size", "2048"}}));
    ASSERT_OK_AND_ASSIGN(auto settings, index_->GetSettings());
    EXPECT_EQ(settings["half_life"], "50");
    EXPECT_EQ(settings["cache_size"], "2048");
  }

  void TestRestoreRebuildsWithoutCompareAndSet() {
    auto empty = OpenEmptyIndex();
    auto& index = *empty;
    EXPECT_TRUE(*index.NeedsRebuild());
    if (publishes_wait_for_rebuild()) {
      auto early = index.Publish(Request(Entry("r/early", 1)));
      EXPECT_TRUE(IsIndexUnavailable(early.status())) << early.status();
    }
    auto v3 = Entry("r/k", 3);
    auto v5 = Entry("r/k", 5);
    v5.depends_on = {"r/base"};
    ASSERT_OK(index.Restore(v3, {}));
    ASSERT_OK(index.Restore(v5, {}));
    // A rebuild that starts again restores the same entries.
    ASSERT_OK(index.Restore(v5, {}));
    auto other = v5;
    other.blob = "data/00/another";
    EXPECT_TRUE(index.Restore(other, {}).IsAlreadyExists());
    ASSERT_OK(index.MarkRebuilt());
    EXPECT_TRUE(index.Restore(Entry("r/late", 1), {}).IsCancelled())
        << "a slower rebuilder must not write into the live index";
    // What began before the index was (re)built cannot be checked against invalidations
    // that happened before it: refused. What begins after is accepted.
    auto from_before = Request(Entry("r/derived", 1));
    from_before.watched = {KeyGeneration("r/k")};
    from_before.since = GenerationSnapshot{0};
    ASSERT_OK_AND_ASSIGN(auto snapshot, index.Snapshot());
    EXPECT_EQ(index.Publish(from_before)->refusal, Refusal::kStaleGeneration);
    from_before.since = snapshot;
    EXPECT_TRUE(index.Publish(from_before)->published());
    EXPECT_FALSE(*index.NeedsRebuild());
    EXPECT_EQ((*index.Get("r/k", std::nullopt))->version, 5u);
    EXPECT_TRUE(index.Get("r/k", 3)->has_value());
    EXPECT_EQ(*index.Dependents("r/base"), std::vector<std::string>{"r/k"});
    EXPECT_EQ(index.Stats()->versions, 3) << "r/k@3, r/k@5 and r/derived@1";
    EXPECT_TRUE(index.Publish(Request(Entry("r/k", 6), &v5))->published());
  }

  std::shared_ptr<Index> index_;
};

#define QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, NAME) \
  TEST_F(FIXTURE, NAME) { Test##NAME(); }

#define QUIVER_INDEX_CONFORMANCE_TESTS(FIXTURE)                                         \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, PublishGetLatestAndVersions)                  \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, PublishIsCompareAndSet)                       \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, ConcurrentPublishersGetDistinctVersions)      \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, RemoveTrimListAndPrefixes)                    \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, ConditionalRemove)                            \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, DependentsAndTagsFollowTheLatestVersion)      \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, GenerationsRefuseWhatWasComputedFromStaleInputs) \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, PublishRacingInvalidationNeverLeavesStaleEntries) \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, LeasesAreExclusiveAndFenced)                  \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, AnExpiredLeaseGoesToTheNextAndFencesTheOld)   \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, BudgetRefusesAndAllowsAtMostOneOver)          \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, TenantTotalsAndBudgets)                       \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, QueryResultsCountForTheirTenant)              \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, ReadsAndCostsOrderEviction)                   \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, SettingsAreShared)                            \
  QUIVER_INDEX_CONFORMANCE_TEST(FIXTURE, RestoreRebuildsWithoutCompareAndSet)

}  // namespace quiver
