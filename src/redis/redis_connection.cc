// Connection and Connector: commands encoded by hiredis' formatter, replies parsed by hiredis'
// reader, the bytes moved by a Transport. Also Reply and the "unavailable" status detail.
#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "redis/redis_client.h"
#include "redis/redis_transport.h"

namespace quiver::redis {

namespace {

using Clock = std::chrono::steady_clock;

constexpr char kUnavailableTypeId[] = "quiver::redis::unavailable";

class RedisUnavailableDetail final : public arrow::StatusDetail {
 public:
  const char* type_id() const override { return kUnavailableTypeId; }
  std::string ToString() const override { return "redis unavailable"; }
};

// Long values are cut in DebugString: it is for log lines.
constexpr size_t kDebugMaxString = 120;
constexpr size_t kDebugMaxElements = 20;

void AppendEscaped(std::string_view text, std::string* out) {
  for (char c : text.substr(0, kDebugMaxString)) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (byte < 0x20 || byte >= 0x7f) {
      *out += fmt::format("\\x{:02x}", byte);
    } else {
      out->push_back(c);
    }
  }
  if (text.size() > kDebugMaxString) *out += fmt::format("...({} bytes)", text.size());
}

void AppendDebug(const Reply& reply, std::string* out) {
  switch (reply.type) {
    case Reply::Type::kString:
      out->push_back('"');
      AppendEscaped(reply.str, out);
      out->push_back('"');
      break;
    case Reply::Type::kStatus:
      AppendEscaped(reply.str, out);
      break;
    case Reply::Type::kError:
      *out += "(error) ";
      AppendEscaped(reply.str, out);
      break;
    case Reply::Type::kInteger:
      *out += fmt::format("(integer) {}", reply.integer);
      break;
    case Reply::Type::kNil:
      *out += "(nil)";
      break;
    case Reply::Type::kArray:
      out->push_back('[');
      for (size_t i = 0; i < reply.elements.size() && i < kDebugMaxElements; ++i) {
        if (i > 0) *out += ", ";
        AppendDebug(reply.elements[i], out);
      }
      if (reply.elements.size() > kDebugMaxElements) {
        *out += fmt::format(", ...({} elements)", reply.elements.size());
      }
      out->push_back(']');
      break;
  }
}

// hiredis 0.14 speaks RESP2 only, so these six types are all there is.
arrow::Result<Reply> ConvertReply(const redisReply* in) {
  Reply out;
  switch (in->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(in->str, in->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(in->str, in->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(in->str, in->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = in->integer;
      break;
    case REDIS_REPLY_NIL:
      out.type = Reply::Type::kNil;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(in->elements);
      for (size_t i = 0; i < in->elements; ++i) {
        ARROW_ASSIGN_OR_RAISE(Reply element, ConvertReply(in->element[i]));
        out.elements.push_back(std::move(element));
      }
      break;
    default:
      return arrow::Status::IOError("protocol error: unknown reply type ", in->type);
  }
  return out;
}

// Appends the RESP encoding of one command. Binary-safe: lengths are passed, not strlen'd.
arrow::Status AppendCommand(const std::vector<std::string>& argv, std::string* out) {
  if (argv.empty()) return arrow::Status::Invalid("redis: empty command");
  // hiredis 0.14 returns the encoded length as an int.
  size_t total = 0;
  for (const auto& arg : argv) total += arg.size() + 32;
  if (argv.size() > INT_MAX / 2 || total > INT_MAX / 2) {
    return arrow::Status::Invalid("redis: command too large (", total, " bytes)");
  }
  std::vector<const char*> pointers;
  std::vector<size_t> lengths;
  pointers.reserve(argv.size());
  lengths.reserve(argv.size());
  for (const auto& arg : argv) {
    pointers.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  char* encoded = nullptr;
  int length = redisFormatCommandArgv(&encoded, static_cast<int>(argv.size()), pointers.data(),
                                      lengths.data());
  if (length < 0 || encoded == nullptr) {
    return arrow::Status::OutOfMemory("redis: cannot encode a command");
  }
  out->append(encoded, static_cast<size_t>(length));
  redisFreeCommand(encoded);
  return arrow::Status::OK();
}

// The server's words in an AUTH error, minus the password should it ever echo it.
std::string Scrub(std::string text, const std::string& password) {
  if (password.empty()) return text;
  for (size_t pos = text.find(password); pos != std::string::npos;
       pos = text.find(password, pos + 3)) {
    text.replace(pos, password.size(), "***");
  }
  return text;
}

}  // namespace

bool IsRedisUnavailable(const arrow::Status& status) {
  if (!status.IsIOError() || status.detail() == nullptr) return false;
  return std::strcmp(status.detail()->type_id(), kUnavailableTypeId) == 0;
}

arrow::Status RedisUnavailable(std::string message) {
  static const auto detail = std::make_shared<RedisUnavailableDetail>();
  return arrow::Status::IOError(std::move(message)).WithDetail(detail);
}

arrow::Status Reply::ToStatus(std::string_view what) const {
  if (type != Type::kError) return arrow::Status::OK();
  return arrow::Status::IOError(what, ": ", str);
}

std::string Reply::DebugString() const {
  std::string out;
  AppendDebug(*this, &out);
  return out;
}

struct Connection::Impl {
  explicit Impl(ConnectOptions opts)
      : options(std::move(opts)), server(internal::ServerName(options.url)) {}
  ~Impl() {
    if (reader != nullptr) redisReaderFree(reader);
  }

  // Every I/O failure ends the connection: its stream position is unknown afterwards.
  arrow::Status Fail(std::string_view message, bool timeout = false) {
    broken = true;
    timed_out = timeout;
    return RedisUnavailable(fmt::format("{}: {}", server, message));
  }

  arrow::Status CheckUsable() {
    if (broken) return RedisUnavailable(server + ": connection is broken");
    return arrow::Status::OK();
  }

  // A write that stalls counts as a timeout, like a reply that does not come: the server may
  // have received whole commands of what was written, so none of it may be sent again.
  arrow::Status WriteAll(std::string_view bytes) {
    auto written = transport->Write(bytes, options.io_timeout);
    if (!written.ok()) return Fail(written.status().message());
    if (*written < bytes.size()) {
      return Fail(fmt::format("could not write for {} ms", options.io_timeout.count()),
                  /*timeout=*/true);
    }
    return arrow::Status::OK();
  }

  // A reply hiredis has already parsed from the bytes fed so far, if any.
  arrow::Result<std::optional<Reply>> TakeParsed() {
    void* raw = nullptr;
    if (redisReaderGetReply(reader, &raw) != REDIS_OK) {
      return Fail(fmt::format("protocol error: {}", reader->errstr));
    }
    if (raw == nullptr) return std::nullopt;
    std::unique_ptr<redisReply, decltype(&freeReplyObject)> owned(
        static_cast<redisReply*>(raw), &freeReplyObject);
    auto converted = ConvertReply(owned.get());
    if (!converted.ok()) return Fail(converted.status().message());
    return std::optional<Reply>(std::move(converted).ValueUnsafe());
  }

  // Waits for the next reply. With `extend_on_progress`, `timeout` bounds the silence
  // between two chunks (a large reply may take longer in all); otherwise the whole wait.
  arrow::Result<std::optional<Reply>> NextReply(std::chrono::milliseconds timeout,
                                                bool extend_on_progress) {
    auto deadline = Clock::now() + timeout;
    while (true) {
      ARROW_ASSIGN_OR_RAISE(auto parsed, TakeParsed());
      if (parsed.has_value()) return parsed;
      // Past the deadline, still one non-blocking look: Receive(0ms) polls.
      auto remaining = std::max(
          std::chrono::milliseconds(0),
          std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()));
      auto n = transport->Read(read_buffer.data(), read_buffer.size(), remaining);
      if (!n.ok()) return Fail(n.status().message());
      if (*n == 0) return std::nullopt;
      if (redisReaderFeed(reader, read_buffer.data(), *n) != REDIS_OK) {
        return Fail(fmt::format("protocol error: {}", reader->errstr));
      }
      if (extend_on_progress) deadline = Clock::now() + timeout;
    }
  }

  // The reply to a request just written; none within io_timeout breaks the connection.
  arrow::Result<Reply> AwaitReply() {
    ARROW_ASSIGN_OR_RAISE(auto reply, NextReply(options.io_timeout, true));
    if (!reply.has_value()) {
      return Fail(fmt::format("no reply within {} ms", options.io_timeout.count()), true);
    }
    return std::move(*reply);
  }

  ConnectOptions options;
  std::string server;
  std::unique_ptr<internal::Transport> transport;
  redisReader* reader = nullptr;
  bool broken = false;
  bool timed_out = false;
  std::vector<char> read_buffer = std::vector<char>(64 * 1024);
};

Connection::Connection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Connection::~Connection() = default;

struct Connector::Tls {
  std::mutex mutex;
  std::unique_ptr<internal::TlsContext> context;  // guarded by mutex; made on first use

  // Valid while the Connector lives; each SSL made from it holds its own reference.
  arrow::Result<const internal::TlsContext*> Get(const ConnectOptions& options) {
    std::lock_guard<std::mutex> lock(mutex);
    // Not kept after a failure: a CA file that is missing now may be there next time.
    if (context == nullptr) {
      ARROW_ASSIGN_OR_RAISE(context, internal::TlsContext::Make(options));
    }
    return context.get();
  }
};

Connector::Connector(ConnectOptions options)
    : options_(std::move(options)), tls_(std::make_unique<Tls>()) {}

Connector::~Connector() = default;

arrow::Result<std::unique_ptr<Connection>> Connection::Connect(const ConnectOptions& options) {
  return Connector(options).Connect();
}

arrow::Result<std::unique_ptr<Connection>> Connector::Connect() const {
  const ConnectOptions& options = options_;
  auto impl = std::make_unique<Connection::Impl>(options);
  const internal::TlsContext* tls = nullptr;
  if (options.url.tls) {
    auto context = tls_->Get(options);
    if (!context.ok()) {
      return RedisUnavailable(fmt::format("{}: {}", impl->server, context.status().message()));
    }
    tls = *context;
  }
  auto transport = internal::ConnectTransport(options, tls);
  if (!transport.ok()) {
    return RedisUnavailable(fmt::format("{}: {}", impl->server, transport.status().message()));
  }
  impl->transport = std::move(transport).ValueUnsafe();
  impl->reader = redisReaderCreate();
  if (impl->reader == nullptr) return arrow::Status::OutOfMemory("redis: no reply reader");
  std::unique_ptr<Connection> connection(new Connection(std::move(impl)));

  // AUTH and SELECT travel in one write: one round trip, not two.
  const RedisUrl& url = options.url;
  std::vector<std::vector<std::string>> setup;
  std::vector<std::string> names;
  if (!url.password.empty()) {
    if (url.user.empty()) {
      setup.push_back({"AUTH", url.password});
    } else {
      setup.push_back({"AUTH", url.user, url.password});
    }
    names.push_back("AUTH");
  }
  if (url.db != 0) {
    setup.push_back({"SELECT", std::to_string(url.db)});
    names.push_back(fmt::format("SELECT {}", url.db));
  }
  if (setup.empty()) return connection;
  ARROW_ASSIGN_OR_RAISE(auto replies, connection->Pipeline(setup));
  for (size_t i = 0; i < replies.size(); ++i) {
    if (replies[i].is_error()) {
      return arrow::Status::IOError("redis ", url.Redacted(), ": ", names[i],
                                    " failed: ", Scrub(replies[i].str, url.password));
    }
  }
  return connection;
}

arrow::Result<Reply> Connection::Command(const std::vector<std::string>& argv) {
  ARROW_RETURN_NOT_OK(impl_->CheckUsable());
  std::string request;
  ARROW_RETURN_NOT_OK(AppendCommand(argv, &request));
  ARROW_RETURN_NOT_OK(impl_->WriteAll(request));
  return impl_->AwaitReply();
}

arrow::Result<std::vector<Reply>> Connection::Pipeline(
    const std::vector<std::vector<std::string>>& commands) {
  ARROW_RETURN_NOT_OK(impl_->CheckUsable());
  std::vector<Reply> replies;
  if (commands.empty()) return replies;
  std::string request;
  for (const auto& argv : commands) ARROW_RETURN_NOT_OK(AppendCommand(argv, &request));
  ARROW_RETURN_NOT_OK(impl_->WriteAll(request));
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    ARROW_ASSIGN_OR_RAISE(Reply reply, impl_->AwaitReply());
    replies.push_back(std::move(reply));
  }
  return replies;
}

arrow::Status Connection::Send(const std::vector<std::string>& argv) {
  ARROW_RETURN_NOT_OK(impl_->CheckUsable());
  std::string request;
  ARROW_RETURN_NOT_OK(AppendCommand(argv, &request));
  return impl_->WriteAll(request);
}

arrow::Result<std::optional<Reply>> Connection::Receive(std::chrono::milliseconds timeout) {
  ARROW_RETURN_NOT_OK(impl_->CheckUsable());
  // A reply that is partly in is kept by the reader for the next call.
  return impl_->NextReply(timeout, false);
}

bool Connection::broken() const { return impl_->broken; }

bool Connection::IdleAndAlive() {
  if (impl_->broken) return false;
  return impl_->transport->IdleAndAlive();
}

bool Connection::timed_out() const { return impl_->timed_out; }

}  // namespace quiver::redis
