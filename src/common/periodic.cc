#include "common/periodic.h"

namespace quiver {

PeriodicTask::PeriodicTask(std::string name, std::chrono::milliseconds interval,
                           std::function<void()> task)
    : name_(std::move(name)), interval_(interval), task_(std::move(task)) {
  if (interval_.count() > 0) thread_ = std::thread([this] { Loop(); });
}

PeriodicTask::~PeriodicTask() { Stop(); }

void PeriodicTask::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void PeriodicTask::Wake() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    woken_ = true;
  }
  cv_.notify_all();
}

void PeriodicTask::RunNow() {
  std::lock_guard<std::mutex> run(run_mutex_);
  task_();
}

void PeriodicTask::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    cv_.wait_for(lock, interval_, [&] { return stopping_ || woken_; });
    if (stopping_) break;
    woken_ = false;
    lock.unlock();
    {
      std::lock_guard<std::mutex> run(run_mutex_);
      task_();
    }
    lock.lock();
  }
}

}  // namespace quiver
