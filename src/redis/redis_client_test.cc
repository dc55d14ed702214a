// Tests of the Redis client against real servers: every redis-server / valkey-server on
// PATH, started per test on a free port (redis_test_util.h). No mocks.
#include "redis/redis_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/testing.h"
#include "redis/redis_test_util.h"

namespace quiver::redis {
namespace {

using test::AvailableRedisServers;
using test::CommandCalls;
using test::ElapsedMs;
using testing_util::Eventually;
using test::RandomBytes;
using test::RedisServerOptions;
using test::RedisServerProcess;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------
// No server needed.

TEST(ReplyTest, ToStatusAndDebugString) {
  Reply error{Reply::Type::kError, "ERR unknown command", 0, {}};
  auto status = error.ToStatus("GET k");
  EXPECT_TRUE(status.IsIOError());
  EXPECT_FALSE(IsRedisUnavailable(status));
  EXPECT_EQ(status.message(), "GET k: ERR unknown command");
  EXPECT_OK(Reply{}.ToStatus("nil"));
  EXPECT_OK((Reply{Reply::Type::kStatus, "OK", 0, {}}.ToStatus("SET")));

  Reply array{Reply::Type::kArray, "", 0, {}};
  array.elements.push_back({Reply::Type::kString, std::string("a\0\"b", 4), 0, {}});
  array.elements.push_back({Reply::Type::kInteger, "", -7, {}});
  array.elements.push_back({});
  EXPECT_EQ(array.DebugString(), "[\"a\\x00\\\"b\", (integer) -7, (nil)]");
  EXPECT_EQ(error.DebugString(), "(error) ERR unknown command");
  Reply big{Reply::Type::kString, std::string(5000, 'x'), 0, {}};
  EXPECT_LT(big.DebugString().size(), 200u);
  EXPECT_NE(big.DebugString().find("5000 bytes"), std::string::npos);
}

TEST(RedisUnavailableTest, DetailMarksTheStatus) {
  auto status = RedisUnavailable("redis h:1: gone");
  EXPECT_TRUE(status.IsIOError());
  EXPECT_TRUE(IsRedisUnavailable(status));
  EXPECT_EQ(status.message(), "redis h:1: gone");
  EXPECT_FALSE(IsRedisUnavailable(arrow::Status::IOError("redis h:1: gone")));
  EXPECT_FALSE(IsRedisUnavailable(arrow::Status::OK()));
}

TEST(ScriptTest, Sha1IsLowerCaseHex) {
  EXPECT_EQ(Script("", Repeat::kSafe).sha1(), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(Script("return 1", Repeat::kSafe).sha1(),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
  Script script("return 1", Repeat::kSafe);
  EXPECT_EQ(script.EvalShaCommand({"k1", "k2"}, {"a"}),
            (std::vector<std::string>{"EVALSHA", script.sha1(), "2", "k1", "k2", "a"}));
}

TEST(ConnectionTest, RefusedIsUnavailable) {
  ASSERT_OK_AND_ASSIGN(int port, test::PickFreePort());
  ConnectOptions options;
  options.url.host = "127.0.0.1";
  options.url.port = port;
  options.url.password = "hunter2";
  auto start = Clock::now();
  auto connection = Connection::Connect(options);
  ASSERT_FALSE(connection.ok());
  EXPECT_LT(ElapsedMs(start), 1000);
  const auto& status = connection.status();
  EXPECT_TRUE(IsRedisUnavailable(status)) << status;
  EXPECT_NE(status.message().find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << status;
  EXPECT_NE(status.message().find("refused"), std::string::npos) << status;
  EXPECT_EQ(status.ToString().find("hunter2"), std::string::npos) << status;

  ConnectionPool pool(options);
  auto reply = pool.Command({"PING"});
  ASSERT_FALSE(reply.ok());
  EXPECT_TRUE(IsRedisUnavailable(reply.status())) << reply.status();
}

TEST(ConnectionTest, UnresolvableHostIsUnavailable) {
  ConnectOptions options;
  options.url.host = "no-such-host.invalid";
  auto connection = Connection::Connect(options);
  ASSERT_FALSE(connection.ok());
  EXPECT_TRUE(IsRedisUnavailable(connection.status())) << connection.status();
  EXPECT_NE(connection.status().message().find("no-such-host.invalid"), std::string::npos);
}

TEST(RedisServers, AtLeastOneInstalled) {
  if (AvailableRedisServers().empty()) {
    GTEST_SKIP() << "neither redis-server nor valkey-server is on PATH: the tests against a "
                    "real server (RedisServerTest.*) did not run";
  }
}

// ---------------------------------------------------------------------------------------
// Against each installed server.
class RedisServerTest : public test::RedisServerTestBase {};

TEST_P(RedisServerTest, BinaryValuesRoundTrip) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  auto connection = Connect(server_->connect_options());
  ASSERT_NE(connection, nullptr);

  std::string key("key\0with\r\nnul", 13);
  std::string value("\0\r\n$3\r\n*1\0", 10);
  ASSERT_OK_AND_ASSIGN(auto set, connection->Command({"SET", key, value}));
  EXPECT_EQ(set.type, Reply::Type::kStatus);
  EXPECT_EQ(set.str, "OK");
  ASSERT_OK_AND_ASSIGN(auto get, connection->Command({"GET", key}));
  EXPECT_EQ(get.type, Reply::Type::kString);
  EXPECT_EQ(get.str, value);

  std::string big = RandomBytes(1 << 20, 1);
  ASSERT_OK_AND_ASSIGN(set, connection->Command({"SET", "big", big}));
  EXPECT_EQ(set.str, "OK");
  ASSERT_OK_AND_ASSIGN(get, connection->Command({"GET", "big"}));
  EXPECT_EQ(get.str.size(), big.size());
  EXPECT_TRUE(get.str == big);
  ASSERT_OK_AND_ASSIGN(auto strlen, connection->Command({"STRLEN", "big"}));
  EXPECT_EQ(strlen.integer, 1 << 20);

  ASSERT_OK_AND_ASSIGN(auto empty_set, connection->Command({"SET", "empty", ""}));
  ASSERT_OK_AND_ASSIGN(auto empty, connection->Command({"GET", "empty"}));
  EXPECT_EQ(empty.type, Reply::Type::kString);
  EXPECT_EQ(empty.str, "");
  EXPECT_FALSE(connection->broken());
}

TEST_P(RedisServerTest, IntegersNilAndArrays) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ConnectionPool pool(server_->connect_options());

  ASSERT_OK_AND_ASSIGN(auto incr, pool.Command({"INCRBY", "n", "-5"}));
  EXPECT_EQ(incr.type, Reply::Type::kInteger);
  EXPECT_EQ(incr.integer, -5);
  ASSERT_OK_AND_ASSIGN(auto large, pool.Command({"INCRBY", "n", "9000000000005"}));
  EXPECT_EQ(large.integer, 9000000000000);

  ASSERT_OK_AND_ASSIGN(auto missing, pool.Command({"GET", "missing"}));
  EXPECT_TRUE(missing.is_nil());
  EXPECT_EQ(missing.type, Reply::Type::kNil);

  ASSERT_OK_AND_ASSIGN(auto push, pool.Command({"RPUSH", "list", "a", "", std::string("c\0", 2)}));
  EXPECT_EQ(push.integer, 3);
  ASSERT_OK_AND_ASSIGN(auto range, pool.Command({"LRANGE", "list", "0", "-1"}));
  ASSERT_EQ(range.type, Reply::Type::kArray);
  ASSERT_EQ(range.elements.size(), 3u);
  EXPECT_EQ(range.elements[0].str, "a");
  EXPECT_EQ(range.elements[1].str, "");
  EXPECT_EQ(range.elements[2].str, std::string("c\0", 2));
  ASSERT_OK_AND_ASSIGN(auto none, pool.Command({"LRANGE", "nolist", "0", "-1"}));
  EXPECT_EQ(none.type, Reply::Type::kArray);
  EXPECT_TRUE(none.elements.empty());

  ASSERT_OK_AND_ASSIGN(auto mget, pool.Command({"MGET", "n", "missing"}));
  ASSERT_EQ(mget.elements.size(), 2u);
  EXPECT_EQ(mget.elements[0].str, "9000000000000");
  EXPECT_TRUE(mget.elements[1].is_nil());

  ASSERT_OK_AND_ASSIGN(auto nested,
                       pool.Command({"EVAL", "return {1, 'two', {3, {'four'}}, -5}", "0"}));
  ASSERT_EQ(nested.type, Reply::Type::kArray) << nested.DebugString();
  ASSERT_EQ(nested.elements.size(), 4u);
  EXPECT_EQ(nested.elements[0].integer, 1);
  EXPECT_EQ(nested.elements[1].str, "two");
  ASSERT_EQ(nested.elements[2].elements.size(), 2u);
  EXPECT_EQ(nested.elements[2].elements[0].integer, 3);
  EXPECT_EQ(nested.elements[2].elements[1].elements.at(0).str, "four");
  EXPECT_EQ(nested.elements[3].integer, -5);
  EXPECT_EQ(nested.DebugString(),
            "[(integer) 1, \"two\", [(integer) 3, [\"four\"]], (integer) -5]");
}

TEST_P(RedisServerTest, ErrorRepliesAreRepliesNotStatusErrors) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  auto connection = Connect(server_->connect_options());
  ASSERT_NE(connection, nullptr);

  ASSERT_OK_AND_ASSIGN(auto unknown, connection->Command({"NOSUCHCOMMAND", "x"}));
  EXPECT_TRUE(unknown.is_error());
  EXPECT_EQ(unknown.str.rfind("ERR", 0), 0u) << unknown.str;
  auto status = unknown.ToStatus("NOSUCHCOMMAND");
  EXPECT_TRUE(status.IsIOError());
  EXPECT_FALSE(IsRedisUnavailable(status));
  EXPECT_EQ(status.message().rfind("NOSUCHCOMMAND: ERR", 0), 0u) << status;

  ASSERT_OK(connection->Command({"SET", "s", "text"}));
  ASSERT_OK_AND_ASSIGN(auto wrongtype, connection->Command({"INCR", "s"}));
  EXPECT_TRUE(wrongtype.is_error());
  ASSERT_OK_AND_ASSIGN(auto wrongtype2, connection->Command({"LPUSH", "s", "x"}));
  EXPECT_EQ(wrongtype2.str.rfind("WRONGTYPE", 0), 0u) << wrongtype2.str;

  // The connection is still in step with the server.
  EXPECT_FALSE(connection->broken());
  ASSERT_OK_AND_ASSIGN(auto pong, connection->Command({"PING"}));
  EXPECT_EQ(pong.str, "PONG");

  // A malformed command is refused before anything is sent.
  auto empty = connection->Command({});
  EXPECT_TRUE(empty.status().IsInvalid()) << empty.status();
  EXPECT_FALSE(connection->broken());
}

TEST_P(RedisServerTest, PipelineKeepsOrder) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  auto connection = Connect(server_->connect_options());
  ASSERT_NE(connection, nullptr);

  std::vector<std::vector<std::string>> commands;
  for (int i = 0; i < 1000; ++i) {
    switch (i % 4) {
      case 0:
        commands.push_back({"SET", "k" + std::to_string(i), "v" + std::to_string(i)});
        break;
      case 1:
        commands.push_back({"GET", "k" + std::to_string(i - 1)});
        break;
      case 2:
        commands.push_back({"INCR", "counter"});
        break;
      default:
        commands.push_back({"GET", "never-set-" + std::to_string(i)});
    }
  }
  ASSERT_OK_AND_ASSIGN(auto replies, connection->Pipeline(commands));
  ASSERT_EQ(replies.size(), 1000u);
  int64_t expected_counter = 0;
  for (int i = 0; i < 1000; ++i) {
    const Reply& reply = replies[i];
    switch (i % 4) {
      case 0:
        ASSERT_EQ(reply.str, "OK") << i;
        break;
      case 1:
        ASSERT_EQ(reply.str, "v" + std::to_string(i - 1)) << i;
        break;
      case 2:
        ASSERT_EQ(reply.integer, ++expected_counter) << i;
        break;
      default:
        ASSERT_TRUE(reply.is_nil()) << i;
    }
  }
  ASSERT_OK_AND_ASSIGN(auto none, connection->Pipeline({}));
  EXPECT_TRUE(none.empty());
  ConnectionPool pool(server_->connect_options());
  ASSERT_OK_AND_ASSIGN(auto pooled, pool.Pipeline({{"GET", "k0"}, {"INCR", "counter"}}));
  ASSERT_EQ(pooled.size(), 2u);
  EXPECT_EQ(pooled[0].str, "v0");
  EXPECT_EQ(pooled[1].integer, 251);
}

TEST_P(RedisServerTest, SendAndReceiveKeepBufferedReplies) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  auto connection = Connect(server_->connect_options());
  ASSERT_NE(connection, nullptr);
  ASSERT_OK_AND_ASSIGN(auto nothing, connection->Receive(milliseconds(50)));
  EXPECT_FALSE(nothing.has_value());
  // Three replies arrive in one read; the second and third must come out of the buffer.
  ASSERT_OK(connection->Send({"ECHO", "one"}));
  ASSERT_OK(connection->Send({"ECHO", "two"}));
  ASSERT_OK(connection->Send({"ECHO", "three"}));
  // Once the server has run all three, their replies are on the socket: the first read
  // takes them together.
  ConnectionPool observer(server_->connect_options());
  ASSERT_TRUE(Eventually([&] {
    auto info = observer.Command({"INFO", "commandstats"});
    return info.ok() && info->str.find("cmdstat_echo:calls=3,") != std::string::npos;
  }));
  for (const char* expected : {"one", "two", "three"}) {
    ASSERT_OK_AND_ASSIGN(auto reply, connection->Receive(milliseconds(2000)));
    ASSERT_TRUE(reply.has_value()) << expected;
    EXPECT_EQ(reply->str, expected);
  }
  ASSERT_OK_AND_ASSIGN(nothing, connection->Receive(milliseconds(0)));
  EXPECT_FALSE(nothing.has_value());
}

TEST_P(RedisServerTest, AuthWithPassword) {
  const std::string password = "s3cret-Quiver-pass";
  auto options = Options();
  options.requirepass = password;
  ASSERT_NO_FATAL_FAILURE(StartServer(options));

  // Right password, with and without the user name.
  ConnectionPool pool(server_->connect_options());
  ASSERT_OK_AND_ASSIGN(auto pong, pool.Command({"PING"}));
  EXPECT_EQ(pong.str, "PONG");
  ConnectOptions with_user = server_->connect_options();
  with_user.url.user = "default";
  auto connection = Connect(with_user);
  ASSERT_NE(connection, nullptr);
  ASSERT_OK_AND_ASSIGN(pong, connection->Command({"PING"}));
  EXPECT_EQ(pong.str, "PONG");

  // Wrong password: a clear error, not "unavailable", and no password in it.
  ConnectOptions wrong = server_->connect_options();
  wrong.url.password = "wrong-horse-battery";
  auto refused = Connection::Connect(wrong);
  ASSERT_FALSE(refused.ok());
  std::string text = refused.status().ToString();
  EXPECT_TRUE(refused.status().IsIOError()) << text;
  EXPECT_FALSE(IsRedisUnavailable(refused.status())) << text;
  EXPECT_NE(text.find("AUTH"), std::string::npos) << text;
  EXPECT_NE(text.find("WRONGPASS"), std::string::npos) << text;
  EXPECT_NE(text.find(std::to_string(server_->port())), std::string::npos) << text;
  EXPECT_EQ(text.find("wrong-horse-battery"), std::string::npos) << text;
  EXPECT_EQ(text.find(password), std::string::npos) << text;
  ConnectionPool wrong_pool(wrong);
  auto pooled = wrong_pool.Command({"PING"});
  ASSERT_FALSE(pooled.ok());
  EXPECT_EQ(pooled.status().ToString().find("wrong-horse-battery"), std::string::npos);

  // No password: the connection opens, and commands answer NOAUTH.
  ConnectOptions anonymous = server_->connect_options();
  anonymous.url.password.clear();
  auto unauthenticated = Connect(anonymous);
  ASSERT_NE(unauthenticated, nullptr);
  ASSERT_OK_AND_ASSIGN(auto noauth, unauthenticated->Command({"GET", "k"}));
  EXPECT_TRUE(noauth.is_error());
  EXPECT_EQ(noauth.str.rfind("NOAUTH", 0), 0u) << noauth.str;
}

TEST_P(RedisServerTest, SelectIsolatesDatabases) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ConnectOptions db0 = server_->connect_options();
  ConnectOptions db1 = db0;
  db1.url.db = 1;
  ConnectionPool pool0(db0);
  ConnectionPool pool1(db1);
  ASSERT_OK(pool1.Command({"SET", "k", "in-db-1"}));
  ASSERT_OK_AND_ASSIGN(auto from0, pool0.Command({"GET", "k"}));
  EXPECT_TRUE(from0.is_nil());
  ASSERT_OK_AND_ASSIGN(auto from1, pool1.Command({"GET", "k"}));
  EXPECT_EQ(from1.str, "in-db-1");
  ASSERT_OK_AND_ASSIGN(auto size1, pool1.Command({"DBSIZE"}));
  EXPECT_EQ(size1.integer, 1);
  ASSERT_OK_AND_ASSIGN(auto size0, pool0.Command({"DBSIZE"}));
  EXPECT_EQ(size0.integer, 0);

  ConnectOptions out_of_range = db0;
  out_of_range.url.db = 99;  // 16 databases by default
  auto refused = Connection::Connect(out_of_range);
  ASSERT_FALSE(refused.ok());
  EXPECT_FALSE(IsRedisUnavailable(refused.status()));
  EXPECT_NE(refused.status().message().find("SELECT 99"), std::string::npos)
      << refused.status();
}

TEST_P(RedisServerTest, ScriptReloadsAfterFlush) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ConnectionPool pool(server_->connect_options());
  Script script("return redis.call('INCRBY', KEYS[1], ARGV[1])", Repeat::kNever);

  // The server computes the same SHA-1.
  ASSERT_OK_AND_ASSIGN(auto loaded, pool.Command({"SCRIPT", "LOAD", script.source()}));
  EXPECT_EQ(loaded.str, script.sha1());
  ASSERT_OK_AND_ASSIGN(auto first, script.Run(&pool, {"counter"}, {"5"}));
  EXPECT_EQ(first.integer, 5);

  ASSERT_OK(pool.Command({"SCRIPT", "FLUSH"}));
  ASSERT_OK_AND_ASSIGN(auto noscript, pool.Command(script.EvalShaCommand({"counter"}, {"1"})));
  EXPECT_TRUE(noscript.is_error());
  EXPECT_EQ(noscript.str.rfind("NOSCRIPT", 0), 0u) << noscript.str;

  ASSERT_OK_AND_ASSIGN(auto reloaded, script.Run(&pool, {"counter"}, {"10"}));
  EXPECT_EQ(reloaded.integer, 15);
  // EVAL cached it again, so plain EVALSHA (as a pipeline would send it) works.
  ASSERT_OK_AND_ASSIGN(auto pipelined,
                       pool.Pipeline({script.EvalShaCommand({"counter"}, {"1"}),
                                      script.EvalShaCommand({"counter"}, {"1"})}));
  EXPECT_EQ(pipelined[0].integer, 16);
  EXPECT_EQ(pipelined[1].integer, 17);

  // A script's own error reply is a Reply.
  Script failing("return redis.error_reply('QUIVERERR boom')", Repeat::kSafe);
  ASSERT_OK_AND_ASSIGN(auto error, failing.Run(&pool, {}, {}));
  EXPECT_TRUE(error.is_error());
  EXPECT_NE(error.str.find("QUIVERERR boom"), std::string::npos) << error.str;
}

TEST_P(RedisServerTest, RunPipelinedLoadsTheScriptOnceAfterAFlush) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ConnectionPool pool(server_->connect_options());
  Script script("return redis.call('INCRBY', KEYS[1], ARGV[1])", Repeat::kNever);
  ASSERT_OK(script.Run(&pool, {"warm"}, {"1"}));
  ASSERT_OK(pool.Command({"SCRIPT", "FLUSH"}));
  ASSERT_OK(pool.Command({"CONFIG", "RESETSTAT"}));
  std::vector<Script::Call> calls;
  for (int i = 0; i < 5; ++i) calls.push_back({{"c" + std::to_string(i)}, {std::to_string(i)}});
  ASSERT_OK_AND_ASSIGN(auto replies, script.RunPipelined(&pool, calls));
  ASSERT_EQ(replies.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(replies[i].integer, i) << replies[i].DebugString();
  EXPECT_EQ(CommandCalls(&pool, "script|load"), 1);
  EXPECT_EQ(CommandCalls(&pool, "eval"), 0) << "the source travels once, not once per run";
  // Loaded now: one round trip, and every run once.
  ASSERT_OK_AND_ASSIGN(replies, script.RunPipelined(&pool, calls));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(replies[i].integer, 2 * i);
  ASSERT_OK_AND_ASSIGN(auto none, script.RunPipelined(&pool, {}));
  EXPECT_TRUE(none.empty());
}

// A server that runs a request and then drops the connection before answering (here: the
// reply is over the client output buffer limit) is what a restart racing a call looks like.
// A Repeat::kSafe call is sent once more on a new connection; a Repeat::kNever one is not.
TEST_P(RedisServerTest, ANonRepeatableCallIsNotRepeated) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ConnectionPool pool(server_->connect_options());
  ASSERT_OK(pool.Command({"CONFIG", "SET", "client-output-buffer-limit", "normal 4096 4096 0"}));
  const std::string source = "redis.call('INCR', KEYS[1]) return string.rep('x', 200000)";
  ASSERT_OK(pool.Command({"SCRIPT", "LOAD", source}));
  auto runs = [&](const std::string& key) {
    auto reply = pool.Command({"GET", key});
    return reply.ok() ? reply->str : reply.status().ToString();
  };

  Script never(source, Repeat::kNever);
  auto once = never.Run(&pool, {"never"}, {});  // on the idle connection GET left
  EXPECT_TRUE(IsRedisUnavailable(once.status())) << once.status();
  EXPECT_EQ(runs("never"), "1");
  auto pipelined = pool.Pipeline({never.EvalShaCommand({"never-p"}, {})}, Repeat::kNever);
  EXPECT_TRUE(IsRedisUnavailable(pipelined.status())) << pipelined.status();
  EXPECT_EQ(runs("never-p"), "1");
  auto run_pipelined = never.RunPipelined(&pool, {{{"never-r"}, {}}});
  EXPECT_TRUE(IsRedisUnavailable(run_pipelined.status())) << run_pipelined.status();
  EXPECT_EQ(runs("never-r"), "1");

  Script safe(source, Repeat::kSafe);
  auto twice = safe.Run(&pool, {"safe"}, {});
  EXPECT_TRUE(IsRedisUnavailable(twice.status())) << twice.status();
  EXPECT_EQ(runs("safe"), "2") << "a safe call is retried once on a new connection";
}

// A request the server does not read (it is busy with a long script) fills the socket
// buffers; the write times out, and like a reply that times out it is never sent again.
TEST_P(RedisServerTest, AWriteThatTimesOutIsNotRepeated) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ConnectOptions options = server_->connect_options();
  options.io_timeout = milliseconds(1000);
  ConnectionPool pool(options);
  ASSERT_OK(pool.Command({"PING"}));  // leaves one idle connection
  const std::string busy =
      "local start = redis.call('TIME') "
      "while true do "
      "  local now = redis.call('TIME') "
      "  if (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > 3000000 then break end "
      "end "
      "return 1";
  const std::string big(32 << 20, 'x');  // more than the socket buffers on both sides hold
  auto start = Clock::now();
  auto stuck = pool.Pipeline({{"EVAL", busy, "0"}, {"SET", "big", big}});
  const int64_t elapsed = ElapsedMs(start);
  ASSERT_FALSE(stuck.ok());
  EXPECT_TRUE(IsRedisUnavailable(stuck.status())) << stuck.status();
  EXPECT_NE(stuck.status().message().find("could not write for 1000 ms"), std::string::npos)
      << stuck.status();
  // A second attempt on a new connection would have stalled for another second.
  EXPECT_LT(elapsed, 1900);
}

TEST_P(RedisServerTest, PoolIsExactUnderEightThreads) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ConnectionPool pool(server_->connect_options(), /*max_idle=*/4);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        auto reply = pool.Command({"INCR", "shared"});
        if (!reply.ok() || reply->type != Reply::Type::kInteger) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_OK_AND_ASSIGN(auto total, pool.Command({"GET", "shared"}));
  EXPECT_EQ(total.str, "4000");
  // At most max_idle connections stayed open (plus this test's own).
  ASSERT_OK_AND_ASSIGN(auto clients, pool.Command({"CLIENT", "LIST"}));
  size_t lines = std::count(clients.str.begin(), clients.str.end(), '\n');
  EXPECT_LE(lines, 4u) << clients.str;
}

TEST_P(RedisServerTest, KilledServerIsUnavailable) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  auto connection = Connect(server_->connect_options());
  ASSERT_NE(connection, nullptr);
  ASSERT_OK(connection->Command({"SET", "k", "v"}));
  server_->Kill();

  auto start = Clock::now();
  auto reply = connection->Command({"GET", "k"});
  ASSERT_FALSE(reply.ok());
  EXPECT_LT(ElapsedMs(start), 1500);
  EXPECT_TRUE(IsRedisUnavailable(reply.status())) << reply.status();
  EXPECT_NE(reply.status().message().find("127.0.0.1:" + std::to_string(server_->port())),
            std::string::npos)
      << reply.status();
  EXPECT_TRUE(connection->broken());
  // Once broken, always broken (even if the server came back).
  auto again = connection->Command({"PING"});
  EXPECT_TRUE(IsRedisUnavailable(again.status())) << again.status();
}

TEST_P(RedisServerTest, PoolRecoversAfterRestart) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ConnectionPool pool(server_->connect_options());
  // Several idle connections, all of which go stale together.
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] { EXPECT_OK(pool.Command({"PING"})); });
    }
    for (auto& thread : threads) thread.join();
  }

  // A restart between two calls is invisible to callers.
  ASSERT_OK(server_->Restart());
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(auto pong, pool.Command({"PING"}));
    EXPECT_EQ(pong.str, "PONG");
  }

  // While it is down, calls fail as unavailable; afterwards the pool works again.
  server_->Kill();
  auto down = pool.Command({"PING"});
  ASSERT_FALSE(down.ok());
  EXPECT_TRUE(IsRedisUnavailable(down.status())) << down.status();
  auto down_pipeline = pool.Pipeline({{"PING"}, {"PING"}});
  EXPECT_TRUE(IsRedisUnavailable(down_pipeline.status())) << down_pipeline.status();
  ASSERT_OK(server_->Restart());
  ASSERT_OK_AND_ASSIGN(auto set, pool.Command({"SET", "after", "restart"}));
  EXPECT_EQ(set.str, "OK");
  pool.Reset();
  ASSERT_OK_AND_ASSIGN(auto get, pool.Command({"GET", "after"}));
  EXPECT_EQ(get.str, "restart");
}

TEST_P(RedisServerTest, SlowReplyTimesOut) {
  ASSERT_NO_FATAL_FAILURE(StartServer(Options()));
  ConnectOptions options = server_->connect_options();
  options.io_timeout = milliseconds(300);
  auto connection = Connect(options);
  ASSERT_NE(connection, nullptr);

  auto start = Clock::now();
  auto reply = connection->Command({"BLPOP", "nosuchlist", "2"});
  int64_t elapsed = ElapsedMs(start);
  ASSERT_FALSE(reply.ok());
  EXPECT_TRUE(IsRedisUnavailable(reply.status())) << reply.status();
  EXPECT_NE(reply.status().message().find("no reply within 300 ms"), std::string::npos)
      << reply.status();
  EXPECT_GE(elapsed, 250);
  EXPECT_LT(elapsed, 1500);
  EXPECT_TRUE(connection->broken());

  // The pool does not repeat a request that timed out: the server may be running it.
  ConnectionPool pool(options);
  ASSERT_OK(pool.Command({"PING"}));  // leaves one idle connection
  start = Clock::now();
  auto pooled = pool.Command({"BLPOP", "nosuchlist", "2"});
  elapsed = ElapsedMs(start);
  EXPECT_TRUE(IsRedisUnavailable(pooled.status())) << pooled.status();
  EXPECT_LT(elapsed, 550);
  ASSERT_OK_AND_ASSIGN(auto pong, pool.Command({"PING"}));
  EXPECT_EQ(pong.str, "PONG");
}

INSTANTIATE_TEST_SUITE_P(Servers, RedisServerTest, ::testing::ValuesIn(AvailableRedisServers()),
                         test::ServerName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(RedisServerTest);

}  // namespace
}  // namespace quiver::redis
