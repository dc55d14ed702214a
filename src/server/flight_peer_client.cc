#include "server/flight_peer_client.h"

#include <functional>

#include "server/node_ticket.h"

namespace quiver {

namespace flight = arrow::flight;

namespace {

// A peer's fill, read batch by batch (decoded by Flight; the follower re-encodes each batch
// once for its own readers).
class PeerStream final : public PeerFill {
 public:
  PeerStream(std::shared_ptr<flight::FlightClient> client,
             std::unique_ptr<flight::FlightStreamReader> reader)
      : client_(std::move(client)), reader_(std::move(reader)) {}

  arrow::Status Start() override {
    auto schema = reader_->GetSchema();
    if (!schema.ok()) {
      if (on_refused_) on_refused_();
      return schema.status();
    }
    schema_ = *schema;
    return arrow::Status::OK();
  }

  /// Called when the peer refuses the stream (the secret may have changed).
  std::function<void()> on_refused_;

  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }

  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Next() override {
    while (true) {
      ARROW_ASSIGN_OR_RAISE(auto chunk, reader_->Next());
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

arrow::Result<std::shared_ptr<flight::FlightClient>> FlightPeerClient::ClientFor(
    const std::string& endpoint) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (secret_.empty()) {
    ARROW_ASSIGN_OR_RAISE(secret_, index_->ClusterSecret(/*refresh=*/false));
  }
  auto it = clients_.find(endpoint);
  if (it != clients_.end()) return it->second;
  ARROW_ASSIGN_OR_RAISE(auto location, flight::Location::Parse(endpoint));
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<flight::FlightClient> client,
                        flight::FlightClient::Connect(location));
  clients_[endpoint] = client;
  return client;
}

arrow::Result<std::unique_ptr<PeerFill>> FlightPeerClient::JoinFill(const std::string& endpoint,
                                                                    const std::string& key,
                                                                    uint64_t token) {
  ARROW_ASSIGN_OR_RAISE(auto client, ClientFor(endpoint));
  std::string secret;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    secret = secret_;
  }
  // A paused or partitioned node would leave a stream hanging before its first message; a
  // short probe tells it apart first (one that stops later is cancelled by the follower).
  flight::FlightCallOptions probe;
  probe.timeout = std::chrono::duration<double>(probe_timeout_);
  auto listed = client->ListActions(probe);
  auto reader = listed.ok() ? client->DoGet(flight::Ticket{MakeNodeTicket(
                                  NodeJoin{key, token, node_}, secret)})
                            : arrow::Result<std::unique_ptr<flight::FlightStreamReader>>(
                                  listed.status());
  if (!reader.ok()) {
    std::lock_guard<std::mutex> lock(mutex_);
    clients_.erase(endpoint);  // reconnect next time
    return reader.status();
  }
  auto stream = std::make_unique<PeerStream>(std::move(client), std::move(*reader));
  // A refused ticket may be signed with a secret from before the index was rebuilt: read
  // the secret again next time.
  stream->on_refused_ = [this] {
    std::lock_guard<std::mutex> lock(mutex_);
    secret_.clear();
  };
  return stream;
}

}  // namespace quiver
