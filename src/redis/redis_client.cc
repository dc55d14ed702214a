// ConnectionPool and Script: the parts of the client shared by many threads.
#include "redis/redis_client.h"

#include <mutex>
#include <utility>

#include <fmt/format.h>
#include <openssl/evp.h>

namespace quiver::redis {

struct ConnectionPool::State {
  std::mutex mutex;
  std::vector<std::unique_ptr<Connection>> idle;  // guarded by mutex
};

ConnectionPool::ConnectionPool(ConnectOptions options, size_t max_idle)
    : options_(std::move(options)), max_idle_(max_idle), state_(std::make_unique<State>()) {}

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

// Retry rule: a call runs at most twice. If it fails with the connection broken, the
// connection came from the idle list, and the failure was not a reply timeout, it runs again
// once on a new connection. That covers an idle connection the server closed in a way
// IdleAndAlive could not see yet (a restart racing the call). The first attempt may then
// have reached the server, so callers only pipeline commands that are safe to repeat:
// reads, idempotent writes, and scripts guarded by compare-and-set. A timeout is never
// retried -- the server is alive but slow, and may still be running the request -- nor is
// a failure on a new connection.
template <typename Fn>
auto ConnectionPool::WithConnection(Fn&& fn) -> decltype(fn(static_cast<Connection*>(nullptr))) {
  std::unique_ptr<Connection> connection = TakeIdle();
  if (connection != nullptr) {
    auto result = fn(connection.get());
    if (result.ok() || !connection->broken() || connection->timed_out()) {
      Return(std::move(connection));
      return result;
    }
    // The other idle connections most likely went stale the same way.
    connection.reset();
    Reset();
  }
  ARROW_ASSIGN_OR_RAISE(connection, Connection::Connect(options_));
  auto result = fn(connection.get());
  Return(std::move(connection));
  return result;
}

arrow::Result<Reply> ConnectionPool::Command(const std::vector<std::string>& argv) {
  return WithConnection([&](Connection* connection) { return connection->Command(argv); });
}

arrow::Result<std::vector<Reply>> ConnectionPool::Pipeline(
    const std::vector<std::vector<std::string>>& commands) {
  return WithConnection(
      [&](Connection* connection) { return connection->Pipeline(commands); });
}

namespace {

std::string Sha1Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha1(), nullptr) != 1) {
    // Only without a usable SHA-1 (a FIPS-only OpenSSL): EVALSHA then fails with
    // NOSCRIPT every time and Run() falls back to EVAL.
    return std::string(40, '0');
  }
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

std::vector<std::string> ScriptCommand(std::string verb, std::string script,
                                       const std::vector<std::string>& keys,
                                       const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back(std::move(verb));
  argv.push_back(std::move(script));
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

}  // namespace

Script::Script(std::string source) : source_(std::move(source)), sha1_(Sha1Hex(source_)) {}

std::vector<std::string> Script::EvalShaCommand(const std::vector<std::string>& keys,
                                                const std::vector<std::string>& args) const {
  return ScriptCommand("EVALSHA", sha1_, keys, args);
}

arrow::Result<Reply> Script::Run(ConnectionPool* pool, const std::vector<std::string>& keys,
                                 const std::vector<std::string>& args) const {
  ARROW_ASSIGN_OR_RAISE(Reply reply, pool->Command(EvalShaCommand(keys, args)));
  if (reply.is_error() && reply.str.starts_with("NOSCRIPT")) {
    // EVAL runs the script and caches it, so the next EVALSHA finds it.
    return pool->Command(ScriptCommand("EVAL", source_, keys, args));
  }
  return reply;
}

}  // namespace quiver::redis
