#include "common/periodic.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace quiver {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Counts runs and lets a test wait for the n-th.
struct Runs {
  std::mutex mutex;
  std::condition_variable cv;
  int count = 0;
  void Add() {
    std::lock_guard<std::mutex> lock(mutex);
    ++count;
    cv.notify_all();
  }
  bool WaitFor(int n, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex);
    return cv.wait_for(lock, timeout, [&] { return count >= n; });
  }
};

TEST(PeriodicTask, RunsEveryIntervalUntilStopped) {
  Runs runs;
  PeriodicTask task("test", milliseconds(10), [&] { runs.Add(); });
  EXPECT_TRUE(runs.WaitFor(3, milliseconds(5000)));
  task.Stop();
  int after_stop;
  {
    std::lock_guard<std::mutex> lock(runs.mutex);
    after_stop = runs.count;
  }
  task.Stop();  // idempotent
  task.RunNow();
  std::lock_guard<std::mutex> lock(runs.mutex);
  EXPECT_EQ(runs.count, after_stop + 1) << "RunNow runs on the caller even after Stop";
}

TEST(PeriodicTask, WakeRunsLongBeforeTheInterval) {
  Runs runs;
  PeriodicTask task("test", std::chrono::hours(1), [&] { runs.Add(); });
  const auto start = steady_clock::now();
  task.Wake();
  ASSERT_TRUE(runs.WaitFor(1, milliseconds(5000)));
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(PeriodicTask, StopDoesNotWaitForTheNextTick) {
  std::atomic<int> runs{0};
  auto task = std::make_unique<PeriodicTask>("test", std::chrono::hours(1), [&] { ++runs; });
  const auto start = steady_clock::now();
  task.reset();  // destruction stops it
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(runs.load(), 0);
}

TEST(PeriodicTask, AZeroIntervalStartsNoThread) {
  std::atomic<int> runs{0};
  PeriodicTask task("test", milliseconds(0), [&] { ++runs; });
  task.Wake();
  task.RunNow();
  EXPECT_EQ(runs.load(), 1);
}

}  // namespace
}  // namespace quiver
