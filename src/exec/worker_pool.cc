#include "exec/worker_pool.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "common/rejection.h"

namespace quiver {

struct WorkerPool::Job {
  Task task;
  arrow::StopSource stop;
  bool done = false;
  arrow::Status status;
};

struct WorkerPool::State {
  std::mutex mutex;
  std::condition_variable work;  // workers: a job was queued, or the pool stops
  std::condition_variable done;  // callers: a job ended, or the pool stops
  std::deque<std::shared_ptr<Job>> queue;
  std::deque<std::shared_ptr<Job>> running;
  bool stopping = false;
  WorkerPoolStats stats;
};

arrow::Result<std::unique_ptr<WorkerPool>> WorkerPool::Make(WorkerPoolOptions options) {
  if (options.max_workers < 1) {
    return arrow::Status::Invalid(options.name, ".max_workers must be >= 1");
  }
  if (options.max_queue < 0) return arrow::Status::Invalid(options.name, ".max_queue must be >= 0");
  std::unique_ptr<WorkerPool> pool(new WorkerPool(std::move(options)));
  for (int64_t i = 0; i < pool->options_.max_workers; ++i) {
    std::thread(Work, pool->state_).detach();
  }
  return pool;
}

WorkerPool::WorkerPool(WorkerPoolOptions options)
    : options_(std::move(options)), state_(std::make_shared<State>()) {}

WorkerPool::~WorkerPool() { Shutdown(); }

void WorkerPool::Work(std::shared_ptr<State> state) {
  std::unique_lock<std::mutex> lock(state->mutex);
  while (true) {
    state->work.wait(lock, [&] { return state->stopping || !state->queue.empty(); });
    if (state->stopping) return;
    auto job = std::move(state->queue.front());
    state->queue.pop_front();
    state->running.push_back(job);
    lock.unlock();
    arrow::Status status = job->task(job->stop.token());
    lock.lock();
    std::erase(state->running, job);
    ++state->stats.completed;
    job->done = true;
    job->status = std::move(status);
    state->done.notify_all();
  }
}

arrow::Status WorkerPool::Run(Task task, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto job = std::make_shared<Job>();
  job->task = std::move(task);
  std::unique_lock<std::mutex> lock(state_->mutex);
  if (state_->stopping) return arrow::Status::Cancelled("server is shutting down");
  // Everything accepted and not yet finished fits in the workers plus the queue.
  const auto accepted = static_cast<int64_t>(state_->queue.size() + state_->running.size());
  if (accepted >= options_.max_workers + options_.max_queue) {
    ++state_->stats.busy;
    return Reject(arrow::Status::CapacityError(
                      "busy: ", state_->running.size(), " ", options_.name,
                      " tasks are running and ",
                      state_->queue.size(), " more are queued (", options_.name,
                      ".max_workers ", options_.max_workers, ", ", options_.name, ".max_queue ",
                      options_.max_queue, "); retry later"),
                  RejectionKind::kBusy, options_.name + ".max_queue", options_.max_queue);
  }
  state_->queue.push_back(job);
  state_->work.notify_one();
  const bool ended = state_->done.wait_until(lock, deadline,
                                             [&] { return job->done || state_->stopping; });
  if (job->done) return job->status;
  if (!ended) ++state_->stats.timeouts;
  // Out of time (or shutting down): a queued job never runs, a running one is told to stop.
  std::erase(state_->queue, job);
  job->stop.RequestStop();
  if (state_->stopping) return arrow::Status::Cancelled("server is shutting down");
  return Reject(arrow::Status::IOError("timed out after ", timeout.count(), " ms (",
                                       options_.name, ".timeout_s)"),
                RejectionKind::kTimedOut, options_.name + ".timeout_s");
}

void WorkerPool::Shutdown() {
  std::lock_guard<std::mutex> lock(state_->mutex);
  if (state_->stopping) return;
  state_->stopping = true;
  state_->queue.clear();
  for (const auto& job : state_->running) job->stop.RequestStop();
  state_->work.notify_all();
  state_->done.notify_all();
}

WorkerPoolStats WorkerPool::stats() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  WorkerPoolStats s = state_->stats;
  s.running = static_cast<int64_t>(state_->running.size());
  s.queued = static_cast<int64_t>(state_->queue.size());
  return s;
}

}  // namespace quiver
