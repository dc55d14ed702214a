// FillGroup: single flight for query fills -- the fills this node runs or follows, in front of
// the index's fill leases.
//
// The lease "fill:<key>" decides which node executes a query; its fencing token is checked
// when the result is published, so a filler that lost the lease (paused, partitioned, slow)
// never publishes. The local registry only saves round trips: a request on this node joins the
// fill registered here (whether this node executes it or follows another node's execution).
// Held leases are renewed while their fills run and commit; a fill whose renewal is refused
// stops caching at once (its publish would be refused anyway).
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cache/fill.h"
#include "common/periodic.h"
#include "index/index.h"

namespace quiver {

enum class FillRole {
  kLeader,    ///< this node executes the query, holding the lease
  kFollower,  ///< another node executes it; this node mirrors or waits
  kUncached,  ///< executing without the index (it is unavailable): not stored
};

struct FillSlot {
  std::shared_ptr<Fill> fill;
  FillRole role = FillRole::kLeader;
  std::optional<LeaseRef> lease;  ///< leader: the lease it holds
  std::string filler;             ///< the node executing the query
  bool committing = false;        ///< leader: its result is being published
};

class FillGroup {
 public:
  FillGroup(Index* index, std::string node, std::string endpoint, int64_t lease_ttl_ms);

  static std::string LeaseName(const std::string& key) { return "fill:" + key; }

  /// \brief The fill of `key` registered here, if any.
  std::optional<FillSlot> Find(const std::string& key);
  /// \brief Try to take the fill lease of `key`.
  arrow::Result<LeaseGrant> Acquire(const std::string& key);
  /// \brief Who holds the fill lease of `key` now.
  arrow::Result<std::optional<LeaseHolder>> Holder(const std::string& key);
  /// \brief Register (or replace) the fill of `key`. A leader's lease is renewed from now on.
  void Register(const std::string& key, FillSlot slot);
  /// \brief Forget `fill` (if it is still the one registered for `key`), giving up its lease
  /// if it still holds it (a fill that published released it already).
  void Unregister(const std::string& key, const std::shared_ptr<Fill>& fill);
  /// \brief The fill of `key` this node leads under `token`, for another node to join.
  std::shared_ptr<Fill> FindLed(const std::string& key, uint64_t token);
  /// \brief The fill of `key` is being committed: a renewal refused from now on may be its
  /// publish releasing the lease, and is left to the publish to settle.
  void Committing(const std::string& key, const std::shared_ptr<Fill>& fill);
  /// \brief The fill of `key` was published (which released its lease): stop renewing it.
  void ForgetLease(const std::string& key, const std::shared_ptr<Fill>& fill);

  const std::string& node() const { return node_; }
  int64_t lease_ttl_ms() const { return lease_ttl_ms_; }
  /// Stop renewing (shutdown).
  void Stop() { renewer_.Stop(); }

 private:
  void RenewAll();

  Index* index_;
  const std::string node_;
  const std::string endpoint_;
  const int64_t lease_ttl_ms_;
  mutable std::mutex mutex_;
  std::map<std::string, FillSlot> slots_;
  PeriodicTask renewer_;
};

}  // namespace quiver
