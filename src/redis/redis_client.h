// A small Redis/Valkey/Dragonfly client: RESP2 over TCP or TLS, with pipelining, a
// thread-safe connection pool, Lua scripts by SHA, and a pub/sub subscriber.
//
// hiredis (Debian's libhiredis 0.14) does the protocol: its reader parses replies and its
// formatter encodes commands. The bytes travel over Quiver's own transport -- a plain
// socket or an OpenSSL session -- because hiredis 0.14 has no TLS. So redis:// and
// rediss:// share one code path.
//
// Errors: a connection that cannot be made, or breaks, or times out, is an IOError whose
// message names the server (never the password) and carries RedisUnavailableDetail, so
// callers can tell "Redis is unreachable" from "Redis answered with an error". A reply of
// type error (e.g. "NOSCRIPT ...", "ERR ...") is not a Status error: it is a Reply.
//
// Thread-safety: Connection is used by one thread at a time. Connector, ConnectionPool,
// Script and Subscriber are safe for concurrent use.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

namespace quiver::redis {

/// Where a Redis-compatible server is, parsed from
/// redis://[[user]:password@]HOST[:PORT][/DB] or rediss://... (TLS). PORT defaults to 6379,
/// DB to 0. IPv6 hosts are written in brackets.
struct RedisUrl {
  bool tls = false;
  std::string host;
  int port = 6379;
  std::string user;      ///< empty: AUTH with the password only (or no AUTH)
  std::string password;  ///< empty: no AUTH
  int db = 0;

  /// \brief Parse a URL; the error names what is wrong with it (and never echoes a password).
  static arrow::Result<RedisUrl> Parse(std::string_view url);
  /// \brief The URL without the password, e.g. "redis://quiver:***@127.0.0.1:6379/0".
  std::string Redacted() const;
  /// \brief "HOST:PORT", an IPv6 host in brackets: "[::1]:6379".
  std::string HostPort() const;
};

struct ConnectOptions {
  RedisUrl url;
  /// rediss: PEM file of the CA(s) that sign the server's certificate; empty: the system's.
  std::string ca_file;
  std::chrono::milliseconds connect_timeout{2000};
  /// Longest wait for one reply (or one write) before the connection counts as broken.
  std::chrono::milliseconds io_timeout{2000};
};

/// A reply, copied out of hiredis' redisReply.
struct Reply {
  enum class Type { kString, kStatus, kError, kInteger, kNil, kArray };
  Type type = Type::kNil;
  std::string str;  ///< kString, kStatus, kError
  int64_t integer = 0;
  std::vector<Reply> elements;  ///< kArray

  bool is_error() const { return type == Type::kError; }
  bool is_nil() const { return type == Type::kNil; }
  /// "ERR ..." -> a Status (IOError) naming `what`; other replies -> OK.
  arrow::Status ToStatus(std::string_view what) const;
  /// For logs and error messages.
  std::string DebugString() const;
};

/// Whether a request may reach the server twice. ConnectionPool sends a request once more, on
/// a new connection, when the idle connection it reused turns out to be broken -- and the
/// first attempt may have run before it broke.
enum class Repeat {
  /// Reads, and writes whose second run changes nothing: sent again after a broken idle
  /// connection.
  kSafe,
  /// Writes whose second run would answer differently or count twice (a compare-and-set
  /// publish would answer "conflict" to its own success): never sent again; the caller gets
  /// the unavailable error and must find out what happened.
  kNever,
};

/// \brief True for the IOError of an unreachable, broken or timed-out connection (it
/// carries RedisUnavailableDetail), false for everything else, OK included.
bool IsRedisUnavailable(const arrow::Status& status);
/// \brief An IOError with `message` that IsRedisUnavailable recognizes.
arrow::Status RedisUnavailable(std::string message);

/// One connection. Connect() also authenticates and selects the database; a refused AUTH
/// or SELECT is an IOError naming the server and quoting its answer, without the
/// unavailable detail (retrying will not help).
class Connection {
 public:
  static arrow::Result<std::unique_ptr<Connection>> Connect(const ConnectOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// \brief Send one command and wait for its reply.
  arrow::Result<Reply> Command(const std::vector<std::string>& argv);
  /// \brief Send several commands in one write and read their replies, in order.
  arrow::Result<std::vector<Reply>> Pipeline(const std::vector<std::vector<std::string>>& commands);

  /// \brief Pub/sub: send a command without waiting for a reply.
  arrow::Status Send(const std::vector<std::string>& argv);
  /// \brief Pub/sub: the next reply or pushed message, or std::nullopt if none arrives
  /// within `timeout` (0: only what is already there). A broken connection is an error;
  /// a reply that has partly arrived is kept for the next call.
  arrow::Result<std::optional<Reply>> Receive(std::chrono::milliseconds timeout);

  /// True once an I/O error happened; the connection must then be dropped.
  bool broken() const;

 private:
  friend class Connector;
  friend class ConnectionPool;
  /// For the pool, before reusing an idle connection: false if the server closed it (say it
  /// restarted) or sent something unasked. Does not block.
  bool IdleAndAlive();
  /// For the pool: the connection broke because a request could not be written, or its
  /// reply did not come, in time -- the server may still be running it (and must not be
  /// sent it again).
  bool timed_out() const;

  struct Impl;
  explicit Connection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Makes the connections to one server. For rediss:// it sets up one TLS context -- the CA
/// file read once -- on first use and shares it among its connections (OpenSSL counts its
/// users, so a connection may outlive the Connector).
class Connector {
 public:
  explicit Connector(ConnectOptions options);
  ~Connector();
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  /// \brief A new connection, authenticated and on its database (see Connection).
  arrow::Result<std::unique_ptr<Connection>> Connect() const;
  const ConnectOptions& options() const { return options_; }

 private:
  ConnectOptions options_;
  struct Tls;
  std::unique_ptr<Tls> tls_;
};

/// Connections shared by many threads: each call borrows an idle connection (or makes one),
/// and returns it afterwards unless it broke.
///
/// An idle connection the server has closed (a restart) is dropped before use. If one still
/// breaks on use, a Repeat::kSafe call is made once more on a new connection, so it may reach
/// the server twice; a Repeat::kNever call is not. A call that timed out (writing or
/// waiting for its reply) is never made again: the server may still be running it.
class ConnectionPool {
 public:
  /// \brief Keep at most `max_idle` idle connections. Nothing is connected until used.
  ConnectionPool(ConnectOptions options, size_t max_idle = 8);
  ~ConnectionPool();

  arrow::Result<Reply> Command(const std::vector<std::string>& argv,
                               Repeat repeat = Repeat::kSafe);
  arrow::Result<std::vector<Reply>> Pipeline(const std::vector<std::vector<std::string>>& commands,
                                             Repeat repeat = Repeat::kSafe);

  /// \brief Drop every idle connection (after the server went away, say).
  void Reset();

 private:
  /// An idle connection that still looks alive, or null.
  std::unique_ptr<Connection> TakeIdle();
  void Return(std::unique_ptr<Connection> connection);
  /// Runs fn(Connection*) on an idle connection or a new one; see the retry rule there.
  template <typename Fn>
  auto WithConnection(Repeat repeat, Fn&& fn) -> decltype(fn(static_cast<Connection*>(nullptr)));

  Connector connector_;
  size_t max_idle_;
  struct State;
  std::unique_ptr<State> state_;
};

/// A Lua script run by SHA (EVALSHA), loaded on demand when the server does not know it (a
/// restarted or flushed server answers NOSCRIPT, having run nothing).
///
/// Whether a run may reach the server twice is the script's own property, declared where it
/// is defined: see Repeat.
class Script {
 public:
  /// One run's KEYS and ARGV.
  struct Call {
    std::vector<std::string> keys;
    std::vector<std::string> args;
  };

  Script(std::string source, Repeat repeat);
  const std::string& sha1() const { return sha1_; }
  const std::string& source() const { return source_; }
  Repeat repeat() const { return repeat_; }

  /// \brief Run with KEYS and ARGV (on NOSCRIPT, again with EVAL, which loads it). The reply
  /// may be of type error (a script's redis.error_reply); a broken connection is a Status
  /// error.
  arrow::Result<Reply> Run(ConnectionPool* pool, std::vector<std::string> keys,
                           std::vector<std::string> args) const;
  /// \brief Run several times in one pipeline; replies in the order of `calls`. If the
  /// server answers NOSCRIPT, the script is loaded once and only the runs it refused are sent
  /// again, in a second pipeline.
  arrow::Result<std::vector<Reply>> RunPipelined(ConnectionPool* pool,
                                                 std::vector<Call> calls) const;
  /// \brief The EVALSHA command of one run.
  std::vector<std::string> EvalShaCommand(std::vector<std::string> keys,
                                          std::vector<std::string> args) const;

 private:
  std::string source_;
  std::string sha1_;
  Repeat repeat_;
};

/// Follows one pub/sub channel on its own connection and thread, reconnecting with
/// exponential backoff (100 ms doubling to 5 s) while the server is away.
///
/// `on_message` gets each message's payload. `on_state` is called with true each time a
/// subscription is (re)established -- after a reconnect, messages may have been missed --
/// and with false, once, when an established subscription is lost (not when an attempt to
/// connect fails, and not on Stop()). Callbacks run on the subscriber's thread and must not
/// destroy the Subscriber.
///
/// A connection that stays silent for 15 s is checked with a PING, so a server that
/// vanished without closing the connection is noticed too.
class Subscriber {
 public:
  using MessageHandler = std::function<void(const std::string& payload)>;
  using StateHandler = std::function<void(bool subscribed)>;

  Subscriber(ConnectOptions options, std::string channel, MessageHandler on_message,
             StateHandler on_state);
  /// Stops and joins the thread.
  ~Subscriber();

  /// \brief Start the thread. Only the first call does anything (none after Stop()).
  void Start();
  /// \brief Stop and join the thread. Idempotent. Returns within about 200 ms, or up to
  /// connect_timeout when a connection attempt is under way.
  void Stop();
  /// \brief True while the subscription is confirmed by the server.
  bool subscribed() const;
  /// \brief Connections tried so far, the first included; each later one follows a backoff
  /// that doubles from 100 ms to 5 s and starts over once a subscription is confirmed.
  int64_t connect_attempts() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quiver::redis
