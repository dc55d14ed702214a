#include "storage/syncer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace quiver {

arrow::Result<Durability> ParseDurability(const std::string& text) {
  if (text == "process") return Durability::kProcess;
  if (text == "fsync") return Durability::kFsync;
  return arrow::Status::Invalid("durability must be \"process\" or \"fsync\", not \"", text,
                                "\"");
}

const char* DurabilityName(Durability durability) {
  return durability == Durability::kFsync ? "fsync" : "process";
}

arrow::Result<std::shared_ptr<Syncer>> Syncer::Open(const std::string& dir,
                                                    Durability durability,
                                                    std::chrono::milliseconds interval) {
  if (interval.count() <= 0) {
    return arrow::Status::Invalid("sync_interval_ms must be > 0, not ", interval.count());
  }
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return arrow::Status::IOError("open data dir ", dir, " to flush it: ", std::strerror(errno));
  }
  return std::shared_ptr<Syncer>(new Syncer(fd, dir, durability, interval));
}

Syncer::Syncer(int fd, std::string dir, Durability durability,
               std::chrono::milliseconds interval)
    : fd_(fd), dir_(std::move(dir)), durability_(durability), interval_(interval) {
  thread_ = std::thread([this] { Loop(); });
}

Syncer::~Syncer() {
  Stop();
  ::close(fd_);
}

void Syncer::SetHooks(std::function<uint64_t()> before, std::function<void(uint64_t)> after) {
  std::lock_guard<std::mutex> lock(mutex_);
  before_ = std::move(before);
  after_ = std::move(after);
}

arrow::Status Syncer::FlushLocked(std::unique_lock<std::mutex>* lock) {
  flushing_ = true;
  const uint64_t covers = requested_;
  auto before = before_;
  auto after = after_;
  lock->unlock();
  dirty_.store(false, std::memory_order_release);
  const uint64_t token = before ? before() : 0;
  int rc = ::syncfs(fd_);
  int err = errno;
  if (rc == 0 && after) after(token);
  lock->lock();
  flushing_ = false;
  ++stats_.syncs;
  if (rc != 0) {
    ++stats_.failures;
    dirty_.store(true, std::memory_order_release);
    // Sticky: after a failed flush the kernel may have dropped dirty pages; nothing written
    // before can be called durable any more (restart the node after fixing the disk).
    if (last_error_.ok()) {
      last_error_ = arrow::Status::IOError("flushing data dir ", dir_, " to disk (syncfs): ",
                                           std::strerror(err));
      spdlog::error("{}; every later write that asks for durability fails until restart",
                    last_error_.message());
    }
  } else {
    covered_ = std::max(covered_, covers);
  }
  cv_.notify_all();
  return last_error_;
}

arrow::Status Syncer::Sync() {
  if (durability_ != Durability::kFsync) return arrow::Status::OK();
  std::unique_lock<std::mutex> lock(mutex_);
  const uint64_t ticket = ++requested_;
  bool waited = false;
  while (covered_ < ticket && last_error_.ok()) {
    if (!flushing_) {
      ARROW_RETURN_NOT_OK(FlushLocked(&lock));
      continue;
    }
    waited = true;
    cv_.wait(lock);  // the running flush may have started before our write: wait for it
  }
  if (waited) ++stats_.waiters;
  return last_error_;
}

arrow::Status Syncer::SyncNow() {
  std::unique_lock<std::mutex> lock(mutex_);
  const uint64_t ticket = ++requested_;
  while (covered_ < ticket && last_error_.ok()) {
    if (!flushing_) {
      ARROW_RETURN_NOT_OK(FlushLocked(&lock));
      continue;
    }
    cv_.wait(lock);
  }
  return last_error_;
}

void Syncer::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    cv_.wait_for(lock, interval_, [this] { return stopping_; });
    if (stopping_) break;
    if (!dirty_.load(std::memory_order_acquire) || flushing_) continue;
    ++requested_;
    (void)FlushLocked(&lock);
  }
}

void Syncer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (dirty_.load(std::memory_order_acquire)) {
    auto st = SyncNow();
    if (!st.ok()) spdlog::error("last flush of {}: {}", dir_, st.ToString());
  }
}

SyncerStats Syncer::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace quiver
