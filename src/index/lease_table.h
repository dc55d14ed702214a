// LeaseTable: the embedded index's leases (see Index::AcquireLease): named, held by one owner
// until they expire or are released, each grant with a fencing token larger than any before.
//
// Time comes from the injected clock, so expiry is testable without sleeping.
//
// Thread-safety: none; the embedded index serializes access.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "index/index.h"

namespace quiver {

class LeaseTable {
 public:
  explicit LeaseTable(std::shared_ptr<Clock> clock) : clock_(std::move(clock)) {}

  LeaseGrant Acquire(const std::string& name, const std::string& owner,
                     const std::string& endpoint, int64_t ttl_ms);
  bool Renew(const LeaseRef& lease, int64_t ttl_ms);
  void Release(const LeaseRef& lease);
  std::optional<LeaseHolder> Get(const std::string& name);
  /// \brief True if `lease` is held, unexpired, with its token.
  bool Holds(const LeaseRef& lease);

 private:
  struct Held {
    LeaseHolder holder;
    int64_t expires_ms = 0;
  };
  /// The unexpired lease `name`, or nullptr (an expired one is dropped).
  Held* Live(const std::string& name);

  std::shared_ptr<Clock> clock_;
  uint64_t last_token_ = 0;
  std::map<std::string, Held> leases_;
};

}  // namespace quiver
