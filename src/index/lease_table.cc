#include "index/lease_table.h"

namespace quiver {

LeaseTable::Held* LeaseTable::Live(const std::string& name) {
  auto it = leases_.find(name);
  if (it == leases_.end()) return nullptr;
  if (clock_->NowMillis() >= it->second.expires_ms) {
    leases_.erase(it);
    return nullptr;
  }
  return &it->second;
}

LeaseGrant LeaseTable::Acquire(const std::string& name, const std::string& owner,
                               const std::string& endpoint, int64_t ttl_ms) {
  LeaseGrant grant;
  if (Held* held = Live(name)) {
    grant.holder = held->holder;
    grant.holder.ttl_ms = held->expires_ms - clock_->NowMillis();
    return grant;
  }
  Held& held = leases_[name];
  held.holder = LeaseHolder{owner, endpoint, ++last_token_, ttl_ms};
  held.expires_ms = clock_->NowMillis() + ttl_ms;
  grant.acquired = true;
  grant.token = held.holder.token;
  grant.holder = held.holder;
  return grant;
}

bool LeaseTable::Renew(const LeaseRef& lease, int64_t ttl_ms) {
  Held* held = Live(lease.name);
  if (!held || held->holder.token != lease.token) return false;
  held->expires_ms = clock_->NowMillis() + ttl_ms;
  return true;
}

void LeaseTable::Release(const LeaseRef& lease) {
  Held* held = Live(lease.name);
  if (held && held->holder.token == lease.token) leases_.erase(lease.name);
}

std::optional<LeaseHolder> LeaseTable::Get(const std::string& name) {
  Held* held = Live(name);
  if (!held) return std::nullopt;
  LeaseHolder holder = held->holder;
  holder.ttl_ms = held->expires_ms - clock_->NowMillis();
  return holder;
}

bool LeaseTable::Holds(const LeaseRef& lease) {
  Held* held = Live(lease.name);
  return held && held->holder.token == lease.token;
}

}  // namespace quiver
