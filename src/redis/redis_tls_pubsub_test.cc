// Tests of the Redis client over TLS, and of the pub/sub subscriber, against real servers:
// every redis-server / valkey-server on PATH, started per test (redis_test_util.h).
#include "redis/redis_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/testing.h"
#include "redis/redis_test_util.h"

namespace quiver::redis {
namespace {

using test::AvailableRedisServers;
using test::ElapsedMs;
using testing_util::Eventually;
using test::RandomBytes;
using test::RedisServerOptions;
using test::RedisServerProcess;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------
// ---------------------------------------------------------------------------------------

class RedisTlsAndPubSubTest : public test::RedisServerTestBase {};

TEST_P(RedisTlsAndPubSubTest, TlsRoundTrip) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options(/*tls=*/true)));
  EXPECT_EQ(server_->url().rfind("rediss://127.0.0.1:", 0), 0u);
  ConnectOptions options = server_->connect_options();
  ASSERT_OK_AND_ASSIGN(options.url, RedisUrl::Parse(server_->url()));
  ConnectionPool pool(options);
  ASSERT_OK_AND_ASSIGN(auto pong, pool.Command({"PING"}));
  EXPECT_EQ(pong.str, "PONG");

  std::string big = RandomBytes(1 << 20, 2);
  ASSERT_OK(pool.Command({"SET", "big", big}));
  ASSERT_OK_AND_ASSIGN(auto get, pool.Command({"GET", "big"}));
  EXPECT_TRUE(get.str == big);

  std::vector<std::vector<std::string>> commands;
  for (int i = 0; i < 1000; ++i) commands.push_back({"INCR", "n"});
  ASSERT_OK_AND_ASSIGN(auto replies, pool.Pipeline(commands));
  ASSERT_EQ(replies.size(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(replies[i].integer, i + 1);

  auto connection = Connect(options);
  ASSERT_NE(connection, nullptr);
  for (const char* word : {"one", "two", "three"}) ASSERT_OK(connection->Send({"ECHO", word}));
  for (const char* word : {"one", "two", "three"}) {
    ASSERT_OK_AND_ASSIGN(auto reply, connection->Receive(milliseconds(2000)));
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->str, word);
  }

  // A restarted TLS server is reconnected to as well.
  ASSERT_OK(server_->Restart());
  ASSERT_OK_AND_ASSIGN(pong, pool.Command({"PING"}));
  EXPECT_EQ(pong.str, "PONG");
}

TEST_P(RedisTlsAndPubSubTest, TlsRejectsUntrustedCertificates) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options(/*tls=*/true)));
  auto expect_refused = [&](const ConnectOptions& options, const std::string& why) {
    auto connection = Connection::Connect(options);
    ASSERT_FALSE(connection.ok()) << why;
    const auto& status = connection.status();
    EXPECT_TRUE(IsRedisUnavailable(status)) << why << ": " << status;
    EXPECT_NE(status.message().find("TLS handshake failed: certificate verify failed"),
              std::string::npos)
        << why << ": " << status;
  };

  ConnectOptions system_ca = server_->connect_options();
  system_ca.ca_file.clear();
  expect_refused(system_ca, "the system CAs");

  std::string other_cert = server_->dir() + "/other.crt";
  ASSERT_OK(test::MakeSelfSignedCertificate(other_cert, server_->dir() + "/other.key"));
  ConnectOptions wrong_ca = server_->connect_options();
  wrong_ca.ca_file = other_cert;
  expect_refused(wrong_ca, "another CA");

  // The certificate names IP 127.0.0.1 only, so "localhost" must not match it.
  ConnectOptions wrong_name = server_->connect_options();
  wrong_name.url.host = "localhost";
  expect_refused(wrong_name, "a name the certificate lacks");

  ConnectOptions missing = server_->connect_options();
  missing.ca_file = server_->dir() + "/no-such-ca.pem";
  auto no_file = Connection::Connect(missing);
  ASSERT_FALSE(no_file.ok());
  EXPECT_NE(no_file.status().message().find("no-such-ca.pem"), std::string::npos)
      << no_file.status();

  // TLS to a plain server, and plain to a TLS server, fail cleanly.
  ASSERT_OK_AND_ASSIGN(auto plain, RedisServerProcess::Start(Options()));
  ConnectOptions tls_to_plain = plain->connect_options();
  tls_to_plain.url.tls = true;
  tls_to_plain.ca_file = server_->ca_file();
  tls_to_plain.connect_timeout = milliseconds(300);
  auto start = Clock::now();
  auto mismatch = Connection::Connect(tls_to_plain);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_TRUE(IsRedisUnavailable(mismatch.status())) << mismatch.status();
  EXPECT_NE(mismatch.status().message().find("TLS handshake"), std::string::npos)
      << mismatch.status();
  EXPECT_LT(ElapsedMs(start), 1000);  // the connect timeout covers the handshake

  ConnectOptions plain_to_tls = server_->connect_options();
  plain_to_tls.url.tls = false;
  plain_to_tls.io_timeout = milliseconds(500);
  start = Clock::now();
  auto plain_connection = Connection::Connect(plain_to_tls);
  if (plain_connection.ok()) {
    auto reply = (*plain_connection)->Command({"PING"});
    EXPECT_FALSE(reply.ok());
    EXPECT_TRUE(IsRedisUnavailable(reply.status())) << reply.status();
  }
  EXPECT_LT(ElapsedMs(start), 1500);
}

// A pool reads its CA file once: connections made later share the TLS context it set up.
TEST_P(RedisTlsAndPubSubTest, ThePoolReadsTheCaFileOnce) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options(/*tls=*/true)));
  ConnectOptions options = server_->connect_options();
  options.ca_file = server_->dir() + "/copy-of-ca.pem";
  std::filesystem::copy_file(server_->ca_file(), options.ca_file);
  ConnectionPool pool(options);
  ASSERT_OK(pool.Command({"PING"}));
  std::filesystem::remove(options.ca_file);
  pool.Reset();  // the next call connects again
  ASSERT_OK_AND_ASSIGN(auto pong, pool.Command({"PING"}));
  EXPECT_EQ(pong.str, "PONG");
  // A connection of its own still reads the file (and finds it gone).
  auto alone = Connection::Connect(options);
  ASSERT_FALSE(alone.ok());
  EXPECT_NE(alone.status().message().find("copy-of-ca.pem"), std::string::npos)
      << alone.status();
}

// Collects a Subscriber's callbacks for a test to wait on.
struct SubscriberEvents {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> messages;
  std::vector<bool> states;

  Subscriber::MessageHandler OnMessage() {
    return [this](const std::string& payload) {
      std::lock_guard<std::mutex> lock(mutex);
      messages.push_back(payload);
      changed.notify_all();
    };
  }
  Subscriber::StateHandler OnState() {
    return [this](bool up) {
      std::lock_guard<std::mutex> lock(mutex);
      states.push_back(up);
      changed.notify_all();
    };
  }
  template <typename Predicate>
  bool WaitFor(Predicate predicate, milliseconds timeout = milliseconds(10000)) {
    std::unique_lock<std::mutex> lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return predicate(); });
  }
  size_t state_count() {
    std::lock_guard<std::mutex> lock(mutex);
    return states.size();
  }
};

TEST_P(RedisTlsAndPubSubTest, SubscriberFollowsRestarts) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  SubscriberEvents events;
  Subscriber subscriber(server_->connect_options(), "quiver:events", events.OnMessage(),
                        events.OnState());
  EXPECT_FALSE(subscriber.subscribed());
  subscriber.Start();
  ASSERT_TRUE(events.WaitFor([&] { return !events.states.empty(); }));
  EXPECT_EQ(events.states, std::vector<bool>{true});
  EXPECT_TRUE(subscriber.subscribed());

  ConnectionPool publisher(server_->connect_options());
  std::string payload("binary\0payload", 14);
  ASSERT_OK_AND_ASSIGN(auto receivers, publisher.Command({"PUBLISH", "quiver:events", payload}));
  EXPECT_EQ(receivers.integer, 1);
  ASSERT_OK(publisher.Command({"PUBLISH", "other-channel", "not for us"}));
  ASSERT_TRUE(events.WaitFor([&] { return !events.messages.empty(); }));
  EXPECT_EQ(events.messages[0], payload);

  server_->Kill();
  ASSERT_TRUE(events.WaitFor([&] { return events.states.size() >= 2; }));
  EXPECT_EQ(events.states, (std::vector<bool>{true, false}));
  EXPECT_FALSE(subscriber.subscribed());

  ASSERT_OK(server_->Restart());
  ASSERT_TRUE(events.WaitFor([&] { return events.states.size() >= 3; }));
  EXPECT_EQ(events.states, (std::vector<bool>{true, false, true}));
  EXPECT_TRUE(subscriber.subscribed());

  std::vector<std::vector<std::string>> burst;
  for (int i = 0; i < 100; ++i) burst.push_back({"PUBLISH", "quiver:events", std::to_string(i)});
  ASSERT_OK(publisher.Pipeline(burst));
  ASSERT_TRUE(events.WaitFor([&] { return events.messages.size() >= 101; }))
      << events.messages.size();
  for (int i = 0; i < 100; ++i) EXPECT_EQ(events.messages[1 + i], std::to_string(i));

  auto start = Clock::now();
  subscriber.Stop();
  EXPECT_LT(ElapsedMs(start), 1000);
  EXPECT_FALSE(subscriber.subscribed());
  subscriber.Stop();  // idempotent
  // Stopping is not a lost connection.
  EXPECT_EQ(events.state_count(), 3u);
  ASSERT_OK_AND_ASSIGN(receivers, publisher.Command({"PUBLISH", "quiver:events", "late"}));
  EXPECT_EQ(receivers.integer, 0);
}

TEST_P(RedisTlsAndPubSubTest, SubscriberOverTlsAndPromptStop) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options(/*tls=*/true)));
  SubscriberEvents events;
  auto subscriber = std::make_unique<Subscriber>(server_->connect_options(), "tls-channel",
                                                 events.OnMessage(), events.OnState());
  subscriber->Start();
  subscriber->Start();  // no second thread
  ASSERT_TRUE(events.WaitFor([&] { return !events.states.empty(); }));
  ConnectionPool publisher(server_->connect_options());
  std::vector<std::vector<std::string>> burst;
  for (int i = 0; i < 50; ++i) burst.push_back({"PUBLISH", "tls-channel", RandomBytes(3000, i)});
  ASSERT_OK_AND_ASSIGN(auto counts, publisher.Pipeline(burst));
  for (const auto& count : counts) EXPECT_EQ(count.integer, 1);
  ASSERT_TRUE(events.WaitFor([&] { return events.messages.size() >= 50; }));
  for (int i = 0; i < 50; ++i) EXPECT_TRUE(events.messages[i] == RandomBytes(3000, i)) << i;

  // Stop while the server is away (the thread is backing off) is prompt too.
  server_->Kill();
  ASSERT_TRUE(events.WaitFor([&] { return events.states.size() >= 2; }));
  // Three failed attempts after the loss: the thread is in a backoff of 800 ms.
  const int64_t before = subscriber->connect_attempts();
  ASSERT_TRUE(Eventually([&] { return subscriber->connect_attempts() >= before + 3; }));
  auto start = Clock::now();
  subscriber.reset();  // the destructor stops and joins
  EXPECT_LT(ElapsedMs(start), 500);
  EXPECT_EQ(events.state_count(), 2u);
}

TEST_P(RedisTlsAndPubSubTest, SubscriberWaitsForALateServer) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  server_->Kill();
  SubscriberEvents events;
  Subscriber subscriber(server_->connect_options(), "late", events.OnMessage(),
                        events.OnState());
  subscriber.Start();
  ASSERT_TRUE(Eventually([&] { return subscriber.connect_attempts() >= 3; }));
  EXPECT_FALSE(subscriber.subscribed());
  EXPECT_EQ(events.state_count(), 0u);  // never subscribed, so never "lost"
  ASSERT_OK(server_->Restart());
  ASSERT_TRUE(events.WaitFor([&] { return !events.states.empty(); }));
  EXPECT_EQ(events.states, std::vector<bool>{true});
}

INSTANTIATE_TEST_SUITE_P(Servers, RedisTlsAndPubSubTest,
                         ::testing::ValuesIn(AvailableRedisServers()), test::ServerName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(RedisTlsAndPubSubTest);

}  // namespace
}  // namespace quiver::redis
