#include "cache/fill_group.h"

#include <vector>

#include <spdlog/spdlog.h>

namespace quiver {

FillGroup::FillGroup(Index* index, std::string node, std::string endpoint, int64_t lease_ttl_ms)
    : index_(index),
      node_(std::move(node)),
      endpoint_(std::move(endpoint)),
      lease_ttl_ms_(lease_ttl_ms),
      renewer_("lease renewer", std::chrono::milliseconds(std::max<int64_t>(lease_ttl_ms / 3, 1)),
               [this] { RenewAll(); }) {}

std::optional<FillSlot> FillGroup::Find(const std::string& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = slots_.find(key);
  if (it == slots_.end()) return std::nullopt;
  return it->second;
}

arrow::Result<LeaseGrant> FillGroup::Acquire(const std::string& key) {
  return index_->AcquireLease(LeaseName(key), node_, endpoint_, lease_ttl_ms_);
}

arrow::Result<std::optional<LeaseHolder>> FillGroup::Holder(const std::string& key) {
  return index_->GetLease(LeaseName(key));
}

void FillGroup::Register(const std::string& key, FillSlot slot) {
  std::lock_guard<std::mutex> lock(mutex_);
  slots_[key] = std::move(slot);
}

void FillGroup::Unregister(const std::string& key, const std::shared_ptr<Fill>& fill) {
  std::optional<LeaseRef> lease;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = slots_.find(key);
    if (it == slots_.end() || it->second.fill != fill) return;
    lease = it->second.lease;
    slots_.erase(it);
  }
  if (!lease) return;
  auto st = index_->ReleaseLease(*lease);
  if (st.ok()) return;
  // An index that is away lets the lease expire by itself.
  if (IsIndexUnavailable(st)) {
    spdlog::debug("releasing the fill lease of {}: {}", key.substr(0, 12), st.ToString());
  } else {
    spdlog::warn("releasing the fill lease of {}: {}", key.substr(0, 12), st.ToString());
  }
}

std::shared_ptr<Fill> FillGroup::FindLed(const std::string& key, uint64_t token) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = slots_.find(key);
  if (it == slots_.end() || it->second.role != FillRole::kLeader || !it->second.lease ||
      it->second.lease->token != token) {
    return nullptr;
  }
  return it->second.fill;
}

void FillGroup::ForgetLease(const std::string& key, const std::shared_ptr<Fill>& fill) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = slots_.find(key);
  if (it != slots_.end() && it->second.fill == fill) it->second.lease.reset();
}

void FillGroup::Committing(const std::string& key, const std::shared_ptr<Fill>& fill) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = slots_.find(key);
  if (it != slots_.end() && it->second.fill == fill) it->second.committing = true;
}

void FillGroup::RenewAll() {
  std::vector<std::pair<std::string, FillSlot>> held;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // Until it is published (ForgetLease) or unregistered: the commit after the stream
    // ended -- an fsync of the whole result, making room -- needs the lease too.
    for (const auto& [key, slot] : slots_) {
      if (slot.lease) held.emplace_back(key, slot);
    }
  }
  for (const auto& [key, slot] : held) {
    auto renewed = index_->RenewLease(*slot.lease, lease_ttl_ms_);
    if (!renewed.ok()) {  // the index is away: the publish will tell
      spdlog::debug("renewing the fill lease of {}: {}", key.substr(0, 12),
                    renewed.status().ToString());
      continue;
    }
    if (*renewed) continue;
    bool committing = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = slots_.find(key);
      // Unregistered or published meanwhile (the publish released the lease): nothing lost.
      if (it == slots_.end() || it->second.fill != slot.fill || !it->second.lease) continue;
      committing = it->second.committing;
      it->second.lease.reset();  // renewing it again is pointless either way
    }
    // Being published: the publish releasing the lease looks the same as losing it; the
    // publish's answer (fenced or not) settles which it was.
    if (committing) continue;
    spdlog::warn("query {}: lost its fill lease (token {}; expired while this node was paused "
                 "or partitioned, and another node may have taken over); its result will not "
                 "be published",
                 key.substr(0, 12), slot.lease->token);
    slot.fill->StopCaching("the fill lease was lost; the result is not cached");
  }
}

}  // namespace quiver

