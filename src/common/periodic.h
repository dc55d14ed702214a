// PeriodicTask: run a function every interval on a thread of its own, until stopped.
//
// The one background loop of the process (usage saves, TTL reclaim, garbage sweeps, lease
// renewal, index health checks). Stop() wakes the thread at once and waits for a run in
// progress to finish; Wake() runs the task now instead of at the next tick.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace quiver {

class PeriodicTask {
 public:
  /// \brief Start running `task` every `interval` (the first run after one interval). An
  /// interval <= 0 starts nothing: the task then runs only through RunNow().
  PeriodicTask(std::string name, std::chrono::milliseconds interval, std::function<void()> task);
  /// Stops the task.
  ~PeriodicTask();
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  /// \brief Stop the thread; waits for a run in progress. Idempotent.
  void Stop();
  /// \brief Run the task at the next chance (now, if the thread is idle).
  void Wake();
  /// \brief Run the task on the calling thread, excluding the periodic runs.
  void RunNow();
  const std::string& name() const { return name_; }

 private:
  void Loop();

  const std::string name_;
  const std::chrono::milliseconds interval_;
  const std::function<void()> task_;
  std::mutex run_mutex_;  // one run at a time
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool woken_ = false;
  std::thread thread_;
};

}  // namespace quiver
