#include "server/flight_peer_client.h"

#include "server/node_ticket.h"

namespace quiver {

namespace flight = arrow::flight;

namespace {

// The PeerClient contract: a node that was not reached, did not answer in time, or refused
// this node's ticket even re-signed is PeerUnreachable (the follower waits for the result);
// anything else it answered (the fill failed, ended, cannot be joined) is passed on as is.
arrow::Status PeerStatus(const arrow::Status& status) {
  if (status.ok() || IsPeerUnreachable(status)) return status;
  auto detail = flight::FlightStatusDetail::UnwrapStatus(status);
  const bool unanswered = detail && (detail->code() == flight::FlightStatusCode::Unavailable ||
                                     detail->code() == flight::FlightStatusCode::TimedOut);
  return unanswered || IsNodeTicketRefused(status) ? PeerUnreachable(status) : status;
}

// A peer's fill, read batch by batch (decoded by Flight; the follower re-encodes each batch
// once for its own readers).
class PeerStream final : public PeerFill {
 public:
  PeerStream(std::shared_ptr<flight::FlightClient> client,
             std::unique_ptr<flight::FlightStreamReader> reader)
      : client_(std::move(client)), reader_(std::move(reader)) {}

  arrow::Status Start() override {
    // Flight's DoGet returned only once the schema had arrived: this does not wait.
    auto schema = reader_->GetSchema();
    if (!schema.ok()) return PeerStatus(schema.status());
    schema_ = *schema;
    return arrow::Status::OK();
  }

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Next() override {
    while (true) {
      auto next = reader_->Next();
      if (!next.ok()) return PeerStatus(next.status());  // a node gone mid-stream: unreachable
      auto& chunk = *next;
      if (chunk.data) return chunk.data;
      if (!chunk.app_metadata) return nullptr;  // end of stream
    }
  }

  void Cancel() override { reader_->Cancel(); }

 private:
  std::shared_ptr<flight::FlightClient> client_;  // outlives the reader
  std::unique_ptr<flight::FlightStreamReader> reader_;
  std::shared_ptr<arrow::Schema> schema_;
};

}  // namespace

arrow::Result<FlightPeerClient::Client> FlightPeerClient::ClientFor(const std::string& endpoint) {
  flight::FlightClientOptions options;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = clients_.find(endpoint);
    if (it != clients_.end()) return it->second;
    options = client_options_;
  }
  ARROW_ASSIGN_OR_RAISE(auto location, flight::Location::Parse(endpoint));
  auto connected = flight::FlightClient::Connect(location, options);
  if (!connected.ok()) return PeerUnreachable(connected.status());
  Client client = std::move(*connected);  // destroyed after the lock below, if not kept
  std::lock_guard<std::mutex> lock(mutex_);
  return clients_.emplace(endpoint, client).first->second;  // or another thread's
}

void FlightPeerClient::Forget(const std::string& endpoint, const Client& client) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = clients_.find(endpoint);
  if (it != clients_.end() && it->second == client) clients_.erase(it);
}

arrow::Result<std::unique_ptr<flight::FlightStreamReader>> FlightPeerClient::Join(
    flight::FlightClient& client, const std::string& key, uint64_t token) {
  const NodeJoin join{key, token, node_};
  ARROW_ASSIGN_OR_RAISE(auto secret, index_->ClusterSecret(/*refresh=*/false));
  auto reader = client.DoGet(flight::Ticket{MakeNodeTicket(join, secret)});
  if (!IsNodeTicketRefused(reader.status())) return reader;
  // The secret changes when the index is rebuilt after losing its data; this node may have
  // signed with the one from before.
  ARROW_ASSIGN_OR_RAISE(auto fresh, index_->ClusterSecret(/*refresh=*/true));
  if (fresh == secret) return reader;
  return client.DoGet(flight::Ticket{MakeNodeTicket(join, fresh)});
}

arrow::Result<std::unique_ptr<PeerFill>> FlightPeerClient::JoinFill(const std::string& endpoint,
                                                                    const std::string& key,
                                                                    uint64_t token) {
  ARROW_ASSIGN_OR_RAISE(auto client, ClientFor(endpoint));
  // Flight's DoGet returns only with the fill's first message and cannot be cancelled
  // before: a paused or partitioned node would hold it (and the follower) until the
  // connection breaks. A probe with a deadline tells such a node apart first. It costs one
  // small call per fill this node follows (not per client: this node's own clients join its
  // follower), and no earlier answer could stand in for it: it is the node's state now that
  // matters.
  flight::FlightCallOptions probe;
  probe.timeout = std::chrono::duration<double>(probe_timeout_);
  auto answered = client->ListActions(probe).status();
  auto reader = answered.ok() ? Join(*client, key, token)
                              : arrow::Result<std::unique_ptr<flight::FlightStreamReader>>(
                                    PeerUnreachable(answered));
  if (!reader.ok()) {
    auto status = PeerStatus(reader.status());
    if (IsPeerUnreachable(status)) Forget(endpoint, client);  // connect afresh next time
    return status;
  }
  return std::make_unique<PeerStream>(std::move(client), std::move(*reader));
}

}  // namespace quiver
