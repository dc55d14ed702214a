// The Index conformance suite on the Redis index, against real redis-server and valkey-server
// processes (one server per binary for the whole run; each test uses a fresh key prefix), and
// the Redis index's own cases: the server going away, coming back, and coming back empty.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <thread>

#include "index/index_test_util.h"
#include "index/redis_index.h"
#include "redis/redis_test_util.h"

namespace quiver {
namespace {

using redis::test::AvailableRedisServers;
using redis::test::RedisServerProcess;

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
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      auto lease = index_->GetLease(name);
      ASSERT_TRUE(lease.ok()) << lease.status();
      if (!*lease) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    FAIL() << "lease " << name << " did not expire";
  }
  bool handles_are_nodes() const override { return true; }
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

// Cases of the Redis index alone, on its own server (it is stopped and restarted).
class RedisIndexFailures : public ::testing::Test {
 protected:
  void SetUp() override {
    auto servers = AvailableRedisServers();
    if (servers.empty()) GTEST_SKIP() << "no redis-server or valkey-server installed";
    redis::test::RedisServerOptions options;
    options.binary = servers.front();
    ASSERT_OK_AND_ASSIGN(server_, RedisServerProcess::Start(options));
  }
  std::unique_ptr<RedisServerProcess> server_;
};

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

}  // namespace
}  // namespace quiver
