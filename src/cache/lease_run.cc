#include "cache/lease_run.h"

#include <chrono>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/periodic.h"

namespace quiver {

arrow::Result<LeaseRun> RunUnderLease(Index* index, const LeaseRunOptions& options,
                                      const std::function<arrow::Status(const LeaseRef&)>& work) {
  // Another node holds the lease briefly while it works; one that died holds it until it
  // expires.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options.wait_ms);
  LeaseGrant grant;
  while (true) {
    ARROW_ASSIGN_OR_RAISE(grant, index->AcquireLease(options.name, options.node,
                                                     options.endpoint, options.ttl_ms));
    if (grant.acquired) break;
    if (std::chrono::steady_clock::now() >= deadline) return LeaseRun{false, grant.holder};
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const LeaseRef lease{options.name, grant.token};
  arrow::Status st;
  {
    PeriodicTask renewer(options.name + " lease", std::chrono::milliseconds(options.ttl_ms / 3),
                         [&] {
                           auto kept = index->RenewLease(lease, options.ttl_ms);
                           if (!kept.ok() || !*kept) {
                             spdlog::warn("the {} lease was lost while its work ran{}",
                                          options.name,
                                          kept.ok() ? "" : ": " + kept.status().ToString());
                           }
                         });
    st = work(lease);
  }
  auto released = index->ReleaseLease(lease);
  if (!released.ok()) spdlog::debug("releasing the {} lease: {}", options.name, released.ToString());
  ARROW_RETURN_NOT_OK(st);
  return LeaseRun{true, {}};
}

}  // namespace quiver
