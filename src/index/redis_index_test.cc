// The Index conformance suite on the Redis index, against real redis-server and valkey-server
// processes (one server per binary for the whole run; each test uses a fresh key prefix), and
// the Redis index's own cases: the server going away, coming back, and coming back empty.
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>

#include "common/testing.h"
#include "index/index_test_util.h"
#include "index/redis_index.h"
#include "policy/eviction_policy.h"
#include "redis/redis_test_util.h"

namespace quiver {
namespace {

using redis::test::AvailableRedisServers;
using redis::test::CommandCalls;
using redis::test::RedisServerProcess;
using testing_util::Eventually;

// One server per binary, started by the first test that needs it (on the main thread, which
// outlives it) and stopped when the test program exits.
RedisServerProcess* ServerFor(const std::string& binary) {
  static std::map<std::string, std::unique_ptr<RedisServerProcess>> servers;
  auto it = servers.find(binary);
  if (it != servers.end()) return it->second.get();
  bool installed = false;
  for (const auto& name : AvailableRedisServers()) installed |= name == binary;
  if (!installed) return nullptr;
  redis::test::RedisServerOptions options;
  options.binary = binary;
  auto started = RedisServerProcess::Start(options);
  EXPECT_TRUE(started.ok()) << started.status();
  if (!started.ok()) return nullptr;
  return (servers[binary] = std::move(*started)).get();
}

std::shared_ptr<RedisIndex> OpenOn(RedisServerProcess* server, const std::string& prefix,
                                   std::chrono::milliseconds touch_interval = {}) {
  RedisIndexOptions options;
  options.connect = server->connect_options();
  options.connect.io_timeout = std::chrono::milliseconds(1000);
  options.prefix = prefix;
  options.node = "test";
  options.touch_flush_interval = touch_interval;  // 0: reads counted at once
  // Few, so that the tests also run with generations being forgotten.
  options.max_generations = 4;
  auto index = RedisIndex::Open(options);
  EXPECT_TRUE(index.ok()) << index.status();
  return index.ok() ? *index : nullptr;
}

class RedisIndexTestBase : public IndexConformanceTest {
 protected:
  virtual const char* binary() const = 0;
  void SetUp() override {
    server_ = ServerFor(binary());
    if (!server_) GTEST_SKIP() << binary() << " is not installed";
    static int next_prefix = 0;
    prefix_ = std::string(binary()) + "-t" + std::to_string(next_prefix++);
    IndexConformanceTest::SetUp();
  }
  std::shared_ptr<Index> OpenHandle() override { return OpenOn(server_, prefix_); }
  std::shared_ptr<Index> OpenEmptyIndex() override { return OpenOn(server_, prefix_ + "-e"); }
  void WaitForLeaseExpiry(const std::string& name, int64_t) override {
    // The server expires it: wait until that is visible (bounded), not for a fixed time.
    ASSERT_TRUE(Eventually([&] {
      auto lease = index_->GetLease(name);
      return lease.ok() && !lease->has_value();
    })) << "lease " << name << " did not expire";
  }
  bool publishes_wait_for_rebuild() const override { return true; }

  RedisServerProcess* server_ = nullptr;
  std::string prefix_;
};

class RedisServerIndexTest : public RedisIndexTestBase {
 protected:
  const char* binary() const override { return "redis-server"; }
};
QUIVER_INDEX_CONFORMANCE_TESTS(RedisServerIndexTest)

class ValkeyServerIndexTest : public RedisIndexTestBase {
 protected:
  const char* binary() const override { return "valkey-server"; }
};
QUIVER_INDEX_CONFORMANCE_TESTS(ValkeyServerIndexTest)

// Cases of the Redis index alone, each on its own server (stopped and restarted, or
// counting the commands it ran).
class RedisIndexOwnServer : public ::testing::Test {
 protected:
  void SetUp() override {
    auto servers = AvailableRedisServers();
    if (servers.empty()) GTEST_SKIP() << "no redis-server or valkey-server installed";
    redis::test::RedisServerOptions options;
    options.binary = servers.front();
    ASSERT_OK_AND_ASSIGN(server_, RedisServerProcess::Start(options));
    admin_ = std::make_unique<redis::ConnectionPool>(server_->connect_options());
  }
  // Scripts run since the last ResetStats(), by SHA or by source.
  int64_t ScriptRuns() {
    return CommandCalls(admin_.get(), "evalsha") + CommandCalls(admin_.get(), "eval");
  }
  void ResetStats() { ASSERT_OK(admin_->Command({"CONFIG", "RESETSTAT"})); }

  std::unique_ptr<RedisServerProcess> server_;
  std::unique_ptr<redis::ConnectionPool> admin_;
};

class RedisIndexFailures : public RedisIndexOwnServer {};
class RedisIndexTest : public RedisIndexOwnServer {};

TEST_F(RedisIndexFailures, AnUnreachableServerIsUnavailableAndComesBack) {
  auto index = OpenOn(server_.get(), "fail");
  ASSERT_OK(index->MarkRebuilt());
  PublishRequest r;
  r.entry = IndexConformanceTest::Entry("s/o", 1);
  ASSERT_TRUE(index->Publish(r)->published());
  ASSERT_OK(server_->Stop());
  auto away = index->Get("s/o", std::nullopt);
  EXPECT_TRUE(IsIndexUnavailable(away.status())) << away.status();
  EXPECT_FALSE(index->Health().available);
  EXPECT_EQ(index->Health().state, "unavailable");
  EXPECT_NE(away.status().message().find("127.0.0.1"), std::string::npos) << away.status();
  ASSERT_OK(server_->Restart());  // no persistence: it comes back empty
  ASSERT_OK_AND_ASSIGN(auto needs, index->NeedsRebuild());
  EXPECT_TRUE(needs) << "a server that lost its data must be rebuilt";
  auto refused = index->Publish(r);
  EXPECT_TRUE(IsIndexUnavailable(refused.status())) << refused.status();
  EXPECT_EQ(index->Health().state, "rebuilding");
  ASSERT_OK(index->Restore(r.entry, {}));
  ASSERT_OK(index->MarkRebuilt());
  ASSERT_OK_AND_ASSIGN(auto back, index->Get("s/o", std::nullopt));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->blob, r.entry.blob);
  EXPECT_TRUE(index->Health().available);
}

TEST_F(RedisIndexFailures, AFailedReadinessCheckKeepsTheIndexUnavailable) {
  auto index = OpenOn(server_.get(), "ready");
  ASSERT_OK(index->MarkRebuilt());
  ASSERT_OK(server_->Stop());
  EXPECT_TRUE(IsIndexUnavailable(index->Stats().status()));
  EXPECT_EQ(index->Health().state, "unavailable");
  ASSERT_OK(server_->Restart());
  // Reachable again, but whether the index kept its data cannot be read: not available.
  ASSERT_OK(admin_->Command({"ACL", "SETUSER", "default", "-hget"}));
  ASSERT_OK(index->Stats());
  EXPECT_EQ(index->Health().state, "unavailable") << index->Health().detail;
  EXPECT_FALSE(index->Health().available);
  ASSERT_OK(admin_->Command({"ACL", "SETUSER", "default", "+hget"}));
  ASSERT_OK(index->Stats());
  EXPECT_EQ(index->Health().state, "rebuilding") << "the restarted server lost its data";
}

TEST_F(RedisIndexFailures, AnnouncementsReachOtherNodesAndReconnectsAreReported) {
  auto a = OpenOn(server_.get(), "events");
  auto b = OpenOn(server_.get(), "events");
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<IndexEvent> heard;
  int resubscribed = 0;
  b->Subscribe(
      [&](const IndexEvent& e) {
        std::lock_guard<std::mutex> lock(mutex);
        heard.push_back(e);
        cv.notify_all();
      },
      [&](bool) {
        std::lock_guard<std::mutex> lock(mutex);
        ++resubscribed;
        cv.notify_all();
      });
  auto wait = [&](auto done, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex);
    return cv.wait_for(lock, timeout, done);
  };
  // Pub/sub delivers only to subscribers already listening: announce until one arrives.
  IndexEvent removed{IndexEvent::Kind::kRemoved, "node-a", "s/o", {"data/00/x.arrows"}};
  for (int i = 0; i < 100; ++i) {
    ASSERT_OK(a->Announce(removed));
    if (wait([&] { return !heard.empty(); }, std::chrono::milliseconds(100))) break;
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    ASSERT_FALSE(heard.empty());
    EXPECT_EQ(heard[0].kind, IndexEvent::Kind::kRemoved);
    EXPECT_EQ(heard[0].node, "node-a");
    EXPECT_EQ(heard[0].blobs, removed.blobs);
  }
  ASSERT_OK(server_->Stop());
  ASSERT_OK(server_->Restart());
  EXPECT_TRUE(wait([&] { return resubscribed > 0; }, std::chrono::seconds(15)))
      << "a reconnect must be reported";
}

TEST_F(RedisIndexFailures, ReadsAreCountedInBatches) {
  auto index = OpenOn(server_.get(), "batch", std::chrono::milliseconds(50));
  ASSERT_OK(index->MarkRebuilt());
  PublishRequest r;
  r.entry = IndexConformanceTest::Entry("s/o", 1);
  ASSERT_TRUE(index->Publish(r)->published());
  for (int i = 0; i < 10; ++i) ASSERT_OK(index->Touch({{"s/o", 1}}, 1700000000500, {}));
  ASSERT_OK(index->FlushTouches());
  ASSERT_OK_AND_ASSIGN(auto usage, index->Usage("s/o"));
  ASSERT_TRUE(usage.has_value());
  EXPECT_EQ(usage->accesses, 11u);
  EXPECT_EQ(usage->last_access_ms, 1700000000500);
}

TEST_F(RedisIndexTest, APublishNamingTheReplacedLinksIsOneScriptRun) {
  auto index = OpenOn(server_.get(), "links");
  ASSERT_OK(index->MarkRebuilt());
  auto v1 = IndexConformanceTest::Entry("s/a", 1);
  v1.depends_on = {"s/base"};
  v1.tags = {"t1"};
  PublishRequest r1;
  r1.entry = v1;
  ASSERT_TRUE(index->Publish(r1)->published());  // also loads the script

  PublishRequest r2;
  r2.entry = IndexConformanceTest::Entry("s/a", 2);
  r2.entry.depends_on = {"s/other"};
  r2.expected_version = 1;
  r2.expected_blob = v1.blob;
  r2.expected_depends_on = v1.depends_on;
  r2.expected_tags = v1.tags;
  ResetStats();
  ASSERT_TRUE(index->Publish(r2)->published());
  EXPECT_EQ(ScriptRuns(), 1) << "no read before the publish";
  EXPECT_TRUE(index->Dependents("s/base")->empty());
  EXPECT_TRUE(index->KeysWithTag("t1")->empty());
  EXPECT_EQ(*index->Dependents("s/other"), std::vector<std::string>{"s/a"});

  // Links that are not the replaced version's are checked, not trusted: refused, and
  // nothing changes.
  PublishRequest r3;
  r3.entry = IndexConformanceTest::Entry("s/a", 3);
  r3.expected_version = 2;
  r3.expected_blob = r2.entry.blob;
  r3.expected_depends_on = {"s/wrong"};
  auto wrong = index->Publish(r3);
  ASSERT_TRUE(wrong.status().IsInvalid()) << wrong.status();
  EXPECT_NE(wrong.status().message().find("expected_depends_on"), std::string::npos);
  EXPECT_EQ(*index->Dependents("s/other"), std::vector<std::string>{"s/a"});
  EXPECT_TRUE(index->Dependents("s/wrong")->empty());
  EXPECT_EQ((*index->Get("s/a", std::nullopt))->version, 2u);
  // A stale expectation is a conflict, whatever links it names.
  r3.expected_version = 1;
  ASSERT_OK_AND_ASSIGN(auto stale, index->Publish(r3));
  EXPECT_EQ(stale.refusal, Refusal::kVersionConflict);
  EXPECT_EQ(stale.current_version, 2u);
}

TEST_F(RedisIndexTest, ARemoveThatCannotApplyRunsNoScript) {
  auto index = OpenOn(server_.get(), "remove");
  ASSERT_OK(index->MarkRebuilt());
  auto q = IndexConformanceTest::Entry("q/r", 1);
  q.expires_ms = 5000;
  PublishRequest r;
  r.entry = q;
  ASSERT_TRUE(index->Publish(r)->published());
  ASSERT_OK(index->Get("q/r", std::nullopt));  // loads the script that reads
  ResetStats();
  RemoveRequest other_blob("q/r");
  other_blob.only_if_blob = "data/00/someone-else";
  EXPECT_TRUE(index->Remove(other_blob)->empty());
  RemoveRequest early("q/r");
  early.only_if_expired_at = 4999;
  EXPECT_TRUE(index->Remove(early)->empty());
  EXPECT_TRUE(index->Remove(RemoveRequest("no/such"))->empty());
  EXPECT_EQ(ScriptRuns(), 3) << "one read each, no removal script";
  EXPECT_TRUE(index->Get("q/r", std::nullopt)->has_value());
}

TEST_F(RedisIndexTest, RestoringSeveralVersionsCountsOneAccess) {
  auto index = OpenOn(server_.get(), "restore");
  auto listed = index->ListLatest("");
  EXPECT_TRUE(IsIndexUnavailable(listed.status())) << "not rebuilt yet: " << listed.status();
  auto v3 = IndexConformanceTest::Entry("r/k", 3);
  auto v5 = IndexConformanceTest::Entry("r/k", 5);
  ASSERT_OK(index->Restore(v3, {}));
  ASSERT_OK(index->Restore(v5, {}));
  // Newest first, as a listing might find them.
  auto w5 = IndexConformanceTest::Entry("r/w", 5);
  auto w3 = IndexConformanceTest::Entry("r/w", 3);
  ASSERT_OK(index->Restore(w5, {}));
  ASSERT_OK(index->Restore(w3, {}));
  ASSERT_OK(index->MarkRebuilt());
  for (const auto* latest : {&v5, &w5}) {
    ASSERT_OK_AND_ASSIGN(auto usage, index->Usage(latest->key));
    ASSERT_TRUE(usage.has_value());
    EXPECT_EQ(usage->accesses, 1u) << latest->key;
    EXPECT_EQ(usage->last_access_ms, latest->created_ms) << latest->key;
    EXPECT_EQ(usage->bytes, 200) << latest->key;
  }
  ASSERT_OK_AND_ASSIGN(auto both, index->ListLatest("r/"));
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[0].latest.version, 5u);
  EXPECT_EQ(both[1].latest.version, 5u);
}

TEST_F(RedisIndexTest, LowestScoredWithoutALimitIsEmpty) {
  auto index = OpenOn(server_.get(), "lowest");
  ASSERT_OK(index->MarkRebuilt());
  PublishRequest r;
  r.entry = IndexConformanceTest::Entry("s/o", 1);
  ASSERT_TRUE(index->Publish(r)->published());
  EXPECT_TRUE(index->LowestScored(0, 0)->empty());
  EXPECT_TRUE(index->LowestScored(0, -1)->empty());
  EXPECT_EQ(index->LowestScored(-3, 1)->size(), 1u) << "a negative offset starts at the lowest";
}

TEST_F(RedisIndexTest, ALostLeaseNamesItsHolderAndToken) {
  auto index = OpenOn(server_.get(), "lease");
  ASSERT_OK(index->MarkRebuilt());
  ASSERT_OK_AND_ASSIGN(auto held, index->AcquireLease("fill:k", "node-b", "grpc://b:1", 60000));
  ASSERT_TRUE(held.acquired);
  PublishRequest r;
  r.entry = IndexConformanceTest::Entry("@q/k", 1);
  r.lease = LeaseRef{"fill:k", held.token + 1};
  ASSERT_OK_AND_ASSIGN(auto refused, index->Publish(r));
  EXPECT_EQ(refused.refusal, Refusal::kLeaseLost);
  EXPECT_EQ(refused.detail, "held by node-b with token " + std::to_string(held.token));
  ASSERT_OK(index->ReleaseLease({"fill:k", held.token}));
  ASSERT_OK_AND_ASSIGN(refused, index->Publish(r));
  EXPECT_EQ(refused.detail, "expired");
}

// Many reads at once are counted in one step (a closed form of what one read at a time adds);
// the scores must be the embedded policy's, read by read.
TEST_F(RedisIndexTest, ManyReadsScoreAsTheEmbeddedPolicyDoes) {
  const double kHalfLives[] = {0.5, 1, 1000, 1e12, std::numeric_limits<double>::infinity()};
  int next = 0;
  for (double half_life : kHalfLives) {
    SCOPED_TRACE(half_life);
    auto index = OpenOn(server_.get(), "score-" + std::to_string(next++));
    ASSERT_OK(index->MarkRebuilt());
    const ScoringPolicy scoring{"cost", half_life};
    PublishRequest r;
    r.entry = IndexConformanceTest::Entry("s/o", 1);
    r.scoring = scoring;
    ASSERT_TRUE(index->Publish(r)->published());
    // The same accesses, one at a time: the publish at tick 1, then the reads.
    CostAwarePolicy policy(half_life);
    PolicyEntry expected;
    expected.bytes = r.entry.bytes;
    expected.cost_s = r.entry.cost_ms / 1000.0;
    uint64_t tick = 0;
    policy.Touch(&expected, ++tick);
    for (int64_t n : {1, 2, 7, 1000, 100000, 3}) {
      ASSERT_OK(index->Touch({{"s/o", n}}, 1700000000000, scoring));
      for (int64_t i = 0; i < n; ++i) policy.Touch(&expected, ++tick);
      ASSERT_OK_AND_ASSIGN(auto usage, index->Usage("s/o"));
      ASSERT_TRUE(usage.has_value());
      const double want = policy.Score(expected);
      EXPECT_NEAR(usage->score, want, 1e-9 * std::max(1.0, std::abs(want))) << "after " << n;
      EXPECT_EQ(usage->accesses, expected.accesses);
    }
  }
}

TEST_F(RedisIndexTest, TheClusterSecretIsSharedAndRereadAtMostOnceASecond) {
  auto a = OpenOn(server_.get(), "secret");
  auto b = OpenOn(server_.get(), "secret");
  ASSERT_OK(a->MarkRebuilt());
  ASSERT_OK_AND_ASSIGN(auto secret, a->ClusterSecret(false));
  EXPECT_EQ(secret.size(), 64u);
  EXPECT_TRUE(std::all_of(secret.begin(), secret.end(),
                          [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }));
  EXPECT_EQ(*b->ClusterSecret(false), secret);
  ASSERT_OK(admin_->Command({"HSET", "{secret}:meta", "secret", "another"}));
  EXPECT_EQ(*a->ClusterSecret(false), secret) << "kept once read";
  // Refreshes re-read it, but not on every call.
  ResetStats();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) ASSERT_OK(a->ClusterSecret(true));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LE(CommandCalls(admin_.get(), "hget"), 1 + static_cast<int64_t>(seconds));
  EXPECT_TRUE(Eventually([&] {
    auto now = a->ClusterSecret(true);
    return now.ok() && *now == "another";
  }));
}

TEST_F(RedisIndexTest, ARebuildKeepsTheClusterSecret) {
  auto index = OpenOn(server_.get(), "kept");
  ASSERT_OK(index->MarkRebuilt());
  ASSERT_OK_AND_ASSIGN(auto secret, index->ClusterSecret(false));
  ASSERT_OK(server_->Restart());  // no persistence: it comes back empty
  ASSERT_OK_AND_ASSIGN(auto needs, index->NeedsRebuild());
  ASSERT_TRUE(needs);
  ASSERT_OK(index->MarkRebuilt());
  auto fresh = OpenOn(server_.get(), "kept");
  EXPECT_EQ(*fresh->ClusterSecret(false), secret) << "tickets signed before stay good";
}

TEST_F(RedisIndexTest, ASnapshotOlderThanForgottenGenerationsIsRefused) {
  auto index = OpenOn(server_.get(), "forgotten");  // remembers 4 generations
  ASSERT_OK(index->MarkRebuilt());
  ASSERT_OK_AND_ASSIGN(auto before, index->Snapshot());
  // Five other names bumped: the oldest is forgotten, so `before` cannot be vouched for.
  for (int i = 0; i < 5; ++i) ASSERT_OK(index->BumpAndCollect({"k" + std::to_string(i)}, {}));
  PublishRequest r;
  r.entry = IndexConformanceTest::Entry("s/o", 1);
  r.watched = {KeyGeneration("unrelated/key")};
  r.since = before;
  EXPECT_EQ(index->Publish(r)->refusal, Refusal::kStaleGeneration);
  ASSERT_OK_AND_ASSIGN(r.since, index->Snapshot());
  EXPECT_TRUE(index->Publish(r)->published());
}

TEST_F(RedisIndexTest, InvalidatingWaitsForTheRebuild) {
  auto index = OpenOn(server_.get(), "bump");
  auto early = index->BumpAndCollect({"s/base"}, {});
  EXPECT_TRUE(IsIndexUnavailable(early.status())) << early.status();
  ASSERT_OK(index->MarkRebuilt());
  EXPECT_TRUE(index->BumpAndCollect({"s/base"}, {})->empty());
}

}  // namespace
}  // namespace quiver
