// Injectable wall clock, so that TTL, age and score code can be tested without sleeping.
//
// Thread-safety: SystemClock is stateless; ManualClock is safe for concurrent use.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

namespace quiver {

class Clock {
 public:
  virtual ~Clock() = default;
  /// \brief Return the current time in milliseconds since the Unix epoch.
  virtual int64_t NowMillis() const = 0;

  /// \brief Return the process-wide real clock.
  static std::shared_ptr<Clock> System();
};

class SystemClock final : public Clock {
 public:
  int64_t NowMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

/// A clock that only moves when told to (tests).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
  int64_t NowMillis() const override { return now_.load(); }
  void Advance(int64_t ms) { now_ += ms; }

 private:
  std::atomic<int64_t> now_;
};

inline std::shared_ptr<Clock> Clock::System() {
  static std::shared_ptr<Clock> clock = std::make_shared<SystemClock>();
  return clock;
}

}  // namespace quiver
