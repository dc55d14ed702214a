// WorkerPool: bounded queue, busy refusals, timeouts, shutdown. Tasks block on latches the
// test opens, so every case waits on events, never on sleeps.
#include "exec/worker_pool.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <vector>

#include "common/rejection.h"
#include "common/testing.h"

namespace quiver {
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kLong{20'000};

// A gate tasks wait at until the test opens it (or their stop is requested).
class Gate {
 public:
  void Open() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  arrow::Status Wait(const arrow::StopToken& stop) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!open_) {
      if (stop.IsStopRequested()) return arrow::Status::Cancelled("stopped");
      cv_.wait_for(lock, milliseconds(5));
    }
    return arrow::Status::OK();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

std::unique_ptr<WorkerPool> MakePool(int64_t workers, int64_t queue) {
  WorkerPoolOptions options;
  options.max_workers = workers;
  options.max_queue = queue;
  options.name = "artifacts";
  auto pool = WorkerPool::Make(options);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return std::move(*pool);
}

bool WaitFor(WorkerPool* pool, int64_t running, int64_t queued) {
  return testing_util::Eventually([&] {
    auto s = pool->stats();
    return s.running == running && s.queued == queued;
  });
}

TEST(WorkerPoolTest, RunsTasksAndReturnsTheirStatus) {
  auto pool = MakePool(2, 2);
  int ran = 0;
  ASSERT_OK(pool->Run([&](const arrow::StopToken&) {
    ++ran;
    return arrow::Status::OK();
  }, kLong));
  auto failed = pool->Run([](const arrow::StopToken&) { return arrow::Status::KeyError("gone"); },
                          kLong);
  EXPECT_TRUE(failed.IsKeyError()) << failed;
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(pool->stats().completed, 2);
}

TEST(WorkerPoolTest, RefusesBeyondWorkersPlusQueueAsBusy) {
  auto pool = MakePool(2, 1);
  auto gate = std::make_shared<Gate>();
  std::vector<std::future<arrow::Status>> accepted;
  for (int i = 0; i < 3; ++i) {
    accepted.push_back(std::async(std::launch::async, [&] {
      return pool->Run([gate](const arrow::StopToken& stop) { return gate->Wait(stop); }, kLong);
    }));
  }
  ASSERT_TRUE(WaitFor(pool.get(), 2, 1));
  auto refused = pool->Run([](const arrow::StopToken&) { return arrow::Status::OK(); }, kLong);
  ASSERT_TRUE(refused.IsCapacityError()) << refused;
  auto rejection = RejectionOf(refused);
  ASSERT_NE(rejection, nullptr);
  EXPECT_EQ(rejection->kind(), RejectionKind::kBusy);
  EXPECT_EQ(rejection->setting(), "artifacts.max_queue");
  EXPECT_EQ(pool->stats().busy, 1);
  gate->Open();
  for (auto& f : accepted) EXPECT_OK(f.get());
  EXPECT_EQ(pool->stats().completed, 3);
  // Room again once they ended.
  EXPECT_OK(pool->Run([](const arrow::StopToken&) { return arrow::Status::OK(); }, kLong));
}

TEST(WorkerPoolTest, ZeroQueueRefusesWhileEveryWorkerIsBusy) {
  auto pool = MakePool(1, 0);
  auto gate = std::make_shared<Gate>();
  auto first = std::async(std::launch::async, [&] {
    return pool->Run([gate](const arrow::StopToken& stop) { return gate->Wait(stop); }, kLong);
  });
  ASSERT_TRUE(WaitFor(pool.get(), 1, 0));
  EXPECT_TRUE(pool->Run([](const arrow::StopToken&) { return arrow::Status::OK(); }, kLong)
                  .IsCapacityError());
  gate->Open();
  EXPECT_OK(first.get());
}

TEST(WorkerPoolTest, RunningTaskPastItsTimeoutIsToldToStop) {
  auto pool = MakePool(1, 1);
  auto gate = std::make_shared<Gate>();  // never opened: only the stop ends the task
  auto stopped = std::make_shared<std::promise<void>>();
  auto st = pool->Run(
      [gate, stopped](const arrow::StopToken& stop) {
        auto waited = gate->Wait(stop);
        stopped->set_value();
        return waited;
      },
      milliseconds(50));
  ASSERT_TRUE(st.IsIOError()) << st;
  auto rejection = RejectionOf(st);
  ASSERT_NE(rejection, nullptr);
  EXPECT_EQ(rejection->kind(), RejectionKind::kTimedOut);
  EXPECT_EQ(rejection->setting(), "artifacts.timeout_s");
  stopped->get_future().wait();  // the task saw its stop
  EXPECT_TRUE(WaitFor(pool.get(), 0, 0));
  EXPECT_EQ(pool->stats().timeouts, 1);
}

TEST(WorkerPoolTest, QueuedTaskPastItsTimeoutNeverRuns) {
  auto pool = MakePool(1, 1);
  auto gate = std::make_shared<Gate>();
  auto blocker = std::async(std::launch::async, [&] {
    return pool->Run([gate](const arrow::StopToken& stop) { return gate->Wait(stop); }, kLong);
  });
  ASSERT_TRUE(WaitFor(pool.get(), 1, 0));
  bool ran = false;
  auto st = pool->Run([&ran](const arrow::StopToken&) {
    ran = true;
    return arrow::Status::OK();
  }, milliseconds(50));
  EXPECT_NE(RejectionOf(st), nullptr) << st;
  EXPECT_EQ(pool->stats().queued, 0);  // dropped from the queue
  gate->Open();
  EXPECT_OK(blocker.get());
  // The worker is free and took nothing else: the dropped task never ran.
  ASSERT_OK(pool->Run([](const arrow::StopToken&) { return arrow::Status::OK(); }, kLong));
  EXPECT_FALSE(ran);
  EXPECT_EQ(pool->stats().completed, 2);
}

TEST(WorkerPoolTest, ShutdownCancelsWaitersAndRefusesNewTasks) {
  auto pool = MakePool(1, 1);
  auto gate = std::make_shared<Gate>();
  auto running = std::async(std::launch::async, [&] {
    return pool->Run([gate](const arrow::StopToken& stop) { return gate->Wait(stop); }, kLong);
  });
  ASSERT_TRUE(WaitFor(pool.get(), 1, 0));
  auto queued = std::async(std::launch::async, [&] {
    return pool->Run([](const arrow::StopToken&) { return arrow::Status::OK(); }, kLong);
  });
  ASSERT_TRUE(WaitFor(pool.get(), 1, 1));
  pool->Shutdown();
  EXPECT_TRUE(running.get().IsCancelled());
  EXPECT_TRUE(queued.get().IsCancelled());
  EXPECT_TRUE(pool->Run([](const arrow::StopToken&) { return arrow::Status::OK(); }, kLong)
                  .IsCancelled());
}

TEST(WorkerPoolTest, RefusesBadLimits) {
  WorkerPoolOptions options;
  options.max_workers = 0;
  EXPECT_TRUE(WorkerPool::Make(options).status().IsInvalid());
  options.max_workers = 1;
  options.max_queue = -1;
  EXPECT_TRUE(WorkerPool::Make(options).status().IsInvalid());
}

}  // namespace
}  // namespace quiver
