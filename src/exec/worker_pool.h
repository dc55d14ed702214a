// WorkerPool: a fixed number of worker threads in front of a bounded queue, for work that must
// not run unbounded (artifact fetches).
//
// Run() submits a task and waits for it. At most max_workers tasks run and max_queue more
// wait; a task beyond that is refused at once (a "busy" rejection, common/rejection.h). A
// task not finished `timeout` after it was submitted (its wait in the queue included) fails
// with a "timed out" rejection: a queued task is dropped, a running one is asked to stop
// through its StopToken and left to end on its worker, which stays busy until it does (a
// blocking read cannot be interrupted) -- its outcome is dropped. A task therefore must keep
// what it writes in state it shares with its caller (shared_ptr), never on the caller's stack.
//
// Workers are detached threads holding the pool's shared state: a task stuck in a read never
// holds up the destruction of the pool (nor the exit of the process).
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/util/cancel.h>

namespace quiver {

struct WorkerPoolOptions {
  /// Tasks running at once. Default: 4.
  int64_t max_workers = 4;
  /// Tasks waiting for a worker before new ones are refused. Default: 64.
  int64_t max_queue = 64;
  /// Names the pool's limits in errors, e.g. "artifacts" (→ "artifacts.max_queue").
  std::string name = "workers";
};

struct WorkerPoolStats {
  int64_t running = 0;    ///< tasks on a worker now (timed-out ones included until they end)
  int64_t queued = 0;     ///< tasks waiting for a worker now
  int64_t completed = 0;  ///< tasks that ran to their end
  int64_t busy = 0;       ///< tasks refused: the queue was full
  int64_t timeouts = 0;   ///< tasks that did not finish in time
};

class WorkerPool {
 public:
  /// A task; it should return soon after `stop` is requested.
  using Task = std::function<arrow::Status(const arrow::StopToken& stop)>;

  static arrow::Result<std::unique_ptr<WorkerPool>> Make(WorkerPoolOptions options);
  /// Shuts down; does not wait for tasks still running.
  ~WorkerPool();

  /// \brief Run `task` on a worker and wait for it, at most `timeout` in all.
  /// Returns the task's status, or: busy (CapacityError) if the queue is full, timed out
  /// (IOError) past `timeout`, Cancelled after Shutdown().
  arrow::Status Run(Task task, std::chrono::milliseconds timeout);

  /// \brief Refuse new tasks, drop queued ones and ask running ones to stop; every waiting
  /// Run() returns Cancelled at once.
  void Shutdown();

  WorkerPoolStats stats() const;
  const WorkerPoolOptions& options() const { return options_; }

 private:
  struct State;
  struct Job;
  explicit WorkerPool(WorkerPoolOptions options);
  static void Work(std::shared_ptr<State> state);

  WorkerPoolOptions options_;
  std::shared_ptr<State> state_;
};

}  // namespace quiver
