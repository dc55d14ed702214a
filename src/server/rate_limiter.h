// TenantRateLimiter: a token bucket per tenant (auth.rate_limit_per_s, auth.rate_limit_burst;
// docs/security.md "Rate limits"). Each request of a tenant takes one token; tokens come back
// at `rate` per second up to `burst`. A request finding the bucket empty is refused as busy
// (Flight UNAVAILABLE with {"error": "busy"}, HTTP 429), so one tenant cannot take the node's
// whole capacity.
//
// Thread-safety: Admit may be called concurrently.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include <arrow/status.h>

namespace quiver {

class TenantRateLimiter {
 public:
  /// `now_s`: a monotonic clock in seconds (tests pass their own).
  TenantRateLimiter(double rate, double burst, std::function<double()> now_s = {});

  /// \brief OK, or a busy rejection naming the tenant and the limit.
  arrow::Status Admit(const std::string& tenant);

 private:
  struct Bucket {
    double tokens = 0;
    double at = 0;
  };
  const double rate_;
  const double burst_;
  const std::function<double()> now_s_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;  // guarded by mu_
};

}  // namespace quiver
