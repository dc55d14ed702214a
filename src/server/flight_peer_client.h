// FlightPeerClient: the PeerClient of a node, over Arrow Flight -- a DoGet with a node ticket
// to the filling node's endpoint, read as a QueryStream.
//
// Clients are kept per endpoint and reused; one whose node did not answer is dropped, so the
// next join connects afresh. Tickets are signed with the index's cluster secret, read again
// when a node refuses one. A stream is cancelled by Cancel() from any thread (the follower
// does so when the filling node's lease changes hands while it is silent).
//
// Thread-safety: JoinFill may be called concurrently.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <arrow/flight/client.h>

#include "cache/peer_client.h"
#include "index/index.h"

namespace quiver {

class FlightPeerClient final : public PeerClient {
 public:
  /// \brief Sign tickets as `node` with the cluster secret of `index`. A node that does not
  /// answer a probe within `probe_timeout` counts as unreachable.
  FlightPeerClient(std::shared_ptr<Index> index, std::string node,
                   std::chrono::milliseconds probe_timeout = std::chrono::milliseconds(1000))
      : index_(std::move(index)), node_(std::move(node)), probe_timeout_(probe_timeout) {}

  /// \brief How to connect to the other nodes: with TLS, the CA that signs their
  /// certificates and this node's own certificate (mutual TLS). May be called again (SIGHUP
  /// with rotated certificates): connections made with the old options are dropped, and
  /// joins running on them finish.
  void set_client_options(arrow::flight::FlightClientOptions options) {
    std::lock_guard<std::mutex> lock(mutex_);
    client_options_ = std::move(options);
    clients_.clear();
  }

  arrow::Result<std::unique_ptr<PeerFill>> JoinFill(const std::string& endpoint,
                                                    const std::string& key,
                                                    uint64_t token) override;

 private:
  using Client = std::shared_ptr<arrow::flight::FlightClient>;

  arrow::Result<Client> ClientFor(const std::string& endpoint);
  /// Drop `client` for `endpoint` (unless another thread replaced it already).
  void Forget(const std::string& endpoint, const Client& client);
  /// The DoGet of a node ticket: returns once the node sent the fill's schema.
  arrow::Result<std::unique_ptr<arrow::flight::FlightStreamReader>> Join(
      arrow::flight::FlightClient& client, const std::string& key, uint64_t token);

  std::shared_ptr<Index> index_;
  std::string node_;
  std::chrono::milliseconds probe_timeout_;
  std::mutex mutex_;  // guards client_options_ and clients_
  arrow::flight::FlightClientOptions client_options_ =
      arrow::flight::FlightClientOptions::Defaults();
  std::map<std::string, Client> clients_;
};

}  // namespace quiver
