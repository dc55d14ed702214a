// ConnectionPool and Script: the parts of the client shared by many threads.
#include "redis/redis_client.h"

#include <iterator>
#include <mutex>
#include <utility>

#include <openssl/evp.h>

#include "common/hex.h"

namespace quiver::redis {

struct ConnectionPool::State {
  std::mutex mutex;
  std::vector<std::unique_ptr<Connection>> idle;  // guarded by mutex
};

ConnectionPool::ConnectionPool(ConnectOptions options, size_t max_idle)
    : connector_(std::move(options)), max_idle_(max_idle), state_(std::make_unique<State>()) {}

ConnectionPool::~ConnectionPool() = default;

std::unique_ptr<Connection> ConnectionPool::TakeIdle() {
  while (true) {
    std::unique_ptr<Connection> connection;
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      if (state_->idle.empty()) return nullptr;
      connection = std::move(state_->idle.back());
      state_->idle.pop_back();
    }
    // Closed by the server while idle (a restart, a client timeout): drop it before it
    // costs a failed request. Destroyed outside the lock; closing TLS writes.
    if (connection->IdleAndAlive()) return connection;
  }
}

void ConnectionPool::Return(std::unique_ptr<Connection> connection) {
  if (connection == nullptr || connection->broken()) return;
  std::lock_guard<std::mutex> lock(state_->mutex);
  if (state_->idle.size() < max_idle_) state_->idle.push_back(std::move(connection));
  // Otherwise `connection`, a parameter, is closed after the lock is released.
}

void ConnectionPool::Reset() {
  std::vector<std::unique_ptr<Connection>> dropped;
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    dropped.swap(state_->idle);
  }
}

// Retry rule: a call runs at most twice. It runs again, once, on a new connection only if
// it failed with the connection broken, the connection came from the idle list, the failure
// was not a timeout, and the call is Repeat::kSafe. That covers an idle connection the
// server closed in a way IdleAndAlive could not see yet (a restart racing the call). The
// first attempt may then have reached the server and run, which is why a kNever call is not
// made again. A timeout (writing, or waiting for the reply) is never retried -- the server
// is alive but slow, and may still be running the request -- nor is a failure on a new
// connection.
template <typename Fn>
auto ConnectionPool::WithConnection(Repeat repeat, Fn&& fn)
    -> decltype(fn(static_cast<Connection*>(nullptr))) {
  std::unique_ptr<Connection> connection = TakeIdle();
  if (connection != nullptr) {
    auto result = fn(connection.get());
    if (result.ok() || !connection->broken()) {
      Return(std::move(connection));
      return result;
    }
    if (connection->timed_out()) return result;
    // The other idle connections most likely went stale the same way.
    connection.reset();
    Reset();
    if (repeat == Repeat::kNever) return result;
  }
  ARROW_ASSIGN_OR_RAISE(connection, connector_.Connect());
  auto result = fn(connection.get());
  Return(std::move(connection));
  return result;
}

arrow::Result<Reply> ConnectionPool::Command(const std::vector<std::string>& argv,
                                             Repeat repeat) {
  return WithConnection(repeat,
                        [&](Connection* connection) { return connection->Command(argv); });
}

arrow::Result<std::vector<Reply>> ConnectionPool::Pipeline(
    const std::vector<std::vector<std::string>>& commands, Repeat repeat) {
  return WithConnection(
      repeat, [&](Connection* connection) { return connection->Pipeline(commands); });
}

namespace {

std::string Sha1Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha1(), nullptr) != 1) {
    // Only without a usable SHA-1 (an OpenSSL built without it): EVALSHA then fails with
    // NOSCRIPT every time; Run() falls back to EVAL, RunPipelined() reports the mismatch.
    return std::string(40, '0');
  }
  return HexEncode(digest, length);
}

std::vector<std::string> ScriptCommand(std::string verb, std::string script,
                                       std::vector<std::string> keys,
                                       std::vector<std::string> args) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back(std::move(verb));
  argv.push_back(std::move(script));
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), std::make_move_iterator(keys.begin()),
              std::make_move_iterator(keys.end()));
  argv.insert(argv.end(), std::make_move_iterator(args.begin()),
              std::make_move_iterator(args.end()));
  return argv;
}

// NOSCRIPT: the server does not know the SHA, so it ran nothing.
bool IsNoScript(const Reply& reply) {
  return reply.is_error() && reply.str.starts_with("NOSCRIPT");
}

}  // namespace

Script::Script(std::string source, Repeat repeat)
    : source_(std::move(source)), sha1_(Sha1Hex(source_)), repeat_(repeat) {}

std::vector<std::string> Script::EvalShaCommand(std::vector<std::string> keys,
                                                std::vector<std::string> args) const {
  return ScriptCommand("EVALSHA", sha1_, std::move(keys), std::move(args));
}

arrow::Result<Reply> Script::Run(ConnectionPool* pool, std::vector<std::string> keys,
                                 std::vector<std::string> args) const {
  std::vector<std::string> argv = EvalShaCommand(std::move(keys), std::move(args));
  ARROW_ASSIGN_OR_RAISE(Reply reply, pool->Command(argv, repeat_));
  if (!IsNoScript(reply)) return reply;
  // EVAL runs the script and caches it, so the next EVALSHA finds it. The same command with
  // the source in place of the SHA.
  argv[0] = "EVAL";
  argv[1] = source_;
  return pool->Command(argv, repeat_);
}

arrow::Result<std::vector<Reply>> Script::RunPipelined(ConnectionPool* pool,
                                                       std::vector<Call> calls) const {
  std::vector<std::vector<std::string>> commands;
  commands.reserve(calls.size());
  for (auto& call : calls) {
    commands.push_back(EvalShaCommand(std::move(call.keys), std::move(call.args)));
  }
  ARROW_ASSIGN_OR_RAISE(auto replies, pool->Pipeline(commands, repeat_));
  std::vector<size_t> refused;
  for (size_t i = 0; i < replies.size(); ++i) {
    if (IsNoScript(replies[i])) refused.push_back(i);
  }
  if (refused.empty()) return replies;
  // A restarted or flushed server (perhaps midway through the pipeline): load the script
  // once, then send only the runs it refused, in the same round trip.
  std::vector<std::vector<std::string>> again;
  again.reserve(1 + refused.size());
  again.push_back({"SCRIPT", "LOAD", source_});
  for (size_t i : refused) again.push_back(std::move(commands[i]));
  ARROW_ASSIGN_OR_RAISE(auto retried, pool->Pipeline(again, repeat_));
  if (retried.size() != again.size() || retried[0].str != sha1_) {
    return arrow::Status::IOError("redis: SCRIPT LOAD answered ",
                                  retried.empty() ? "nothing" : retried[0].DebugString(),
                                  ", expected SHA-1 ", sha1_);
  }
  for (size_t k = 0; k < refused.size(); ++k) replies[refused[k]] = std::move(retried[k + 1]);
  return replies;
}

}  // namespace quiver::redis
