// Subscriber: one channel, its own connection and thread, reconnecting with backoff.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "redis/redis_client.h"

namespace quiver::redis {

namespace {

using Clock = std::chrono::steady_clock;

// How long one Receive waits: bounds how late the thread notices Stop().
constexpr std::chrono::milliseconds kPollInterval{200};
constexpr std::chrono::milliseconds kInitialBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5000};
// After this much silence a PING checks the server is still there: a peer that vanished
// without closing (a network partition, a killed VM) never makes a read fail by itself.
constexpr std::chrono::seconds kKeepAliveAfter{15};

}  // namespace

struct Subscriber::Impl {
  explicit Impl(ConnectOptions options) : connector(std::move(options)) {}

  const Connector connector;  // one TLS context for all the reconnects
  std::string channel;
  MessageHandler on_message;
  StateHandler on_state;

  std::mutex mutex;
  std::condition_variable wake;
  bool started = false;   // guarded by mutex
  bool stopping = false;  // guarded by mutex
  std::atomic<bool> subscribed{false};
  std::atomic<int64_t> attempts{0};
  std::mutex join_mutex;  // two Stop()s must not join at once
  std::thread thread;

  bool Stopping() {
    std::lock_guard<std::mutex> lock(mutex);
    return stopping;
  }

  // Waits `delay` unless Stop() comes first; false when stopping.
  bool SleepUnlessStopped(std::chrono::milliseconds delay) {
    std::unique_lock<std::mutex> lock(mutex);
    return !wake.wait_for(lock, delay, [this] { return stopping; });
  }

  void Run() {
    auto backoff = kInitialBackoff;
    while (!Stopping()) {
      ++attempts;
      auto connection = connector.Connect();
      if (connection.ok() && (*connection)->Send({"SUBSCRIBE", channel}).ok()) {
        Serve(connection->get(), &backoff);
      }
      bool was_subscribed = subscribed.exchange(false);
      if (Stopping()) break;
      if (was_subscribed && on_state) on_state(false);
      if (!SleepUnlessStopped(backoff)) break;
      backoff = std::min(2 * backoff, kMaxBackoff);
    }
    subscribed = false;
  }

  // Delivers what arrives on `connection` until it breaks or Stop() is called.
  void Serve(Connection* connection, std::chrono::milliseconds* backoff) {
    auto last_heard = Clock::now();
    bool ping_sent = false;
    while (!Stopping()) {
      auto received = connection->Receive(kPollInterval);
      if (!received.ok()) return;
      if (!received->has_value()) {
        auto silence = Clock::now() - last_heard;
        if (ping_sent && silence > kKeepAliveAfter + connector.options().io_timeout) return;
        if (!ping_sent && silence > kKeepAliveAfter) {
          if (!connection->Send({"PING"}).ok()) return;
          ping_sent = true;
        }
        continue;
      }
      last_heard = Clock::now();
      ping_sent = false;
      const Reply& reply = **received;
      // An error (say an ACL refusing the channel) ends this connection; the next attempt
      // comes after the backoff.
      if (reply.is_error()) return;
      if (reply.type != Reply::Type::kArray || reply.elements.empty()) continue;
      const std::string& kind = reply.elements[0].str;
      if (kind == "message" && reply.elements.size() >= 3) {
        if (on_message) on_message(reply.elements[2].str);
      } else if (kind == "subscribe") {
        subscribed = true;
        *backoff = kInitialBackoff;
        if (on_state) on_state(true);
      }
      // "pong" answers the keep-alive PING; nothing else is expected.
    }
  }
};

Subscriber::Subscriber(ConnectOptions options, std::string channel, MessageHandler on_message,
                       StateHandler on_state)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->channel = std::move(channel);
  impl_->on_message = std::move(on_message);
  impl_->on_state = std::move(on_state);
}

Subscriber::~Subscriber() { Stop(); }

void Subscriber::Start() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (impl_->started || impl_->stopping) return;
  impl_->started = true;
  impl_->thread = std::thread([impl = impl_.get()] { impl->Run(); });
}

void Subscriber::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  std::lock_guard<std::mutex> lock(impl_->join_mutex);
  // From a callback (the thread itself) it cannot join; the thread ends after the callback.
  if (impl_->thread.joinable() && impl_->thread.get_id() != std::this_thread::get_id()) {
    impl_->thread.join();
  }
}

bool Subscriber::subscribed() const { return impl_->subscribed.load(); }

int64_t Subscriber::connect_attempts() const { return impl_->attempts.load(); }

}  // namespace quiver::redis
