#include "server/rate_limiter.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/rejection.h"

namespace quiver {

TenantRateLimiter::TenantRateLimiter(double rate, double burst, std::function<double()> now_s)
    : rate_(rate),
      burst_(std::max(1.0, burst)),
      now_s_(now_s ? std::move(now_s) : [] {
        return std::chrono::duration<double>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
      }) {}

arrow::Status TenantRateLimiter::Admit(const std::string& tenant) {
  const double now = now_s_();
  std::lock_guard lock(mu_);
  auto [it, fresh] = buckets_.try_emplace(tenant, Bucket{burst_, now});
  Bucket& b = it->second;
  if (!fresh) {
    b.tokens = std::min(burst_, b.tokens + (now - b.at) * rate_);
    b.at = now;
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return arrow::Status::OK();
  }
  return Reject(arrow::Status::IOError("tenant '", tenant, "' is over its request rate (",
                                       rate_, " requests/s, bursts of ", burst_,
                                       "); retry shortly"),
                RejectionKind::kBusy, "auth.rate_limit_per_s",
                static_cast<int64_t>(std::llround(rate_)));
}

}  // namespace quiver
