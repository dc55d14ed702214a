// QuiverClient: a small C++ client for Quiver's management API over Arrow Flight, used by
// the `quiver` admin commands. It speaks only the public wire API (docs/), never reaching
// into server internals.
//
// Thread-safety: not safe for concurrent use; make one per thread.
#pragma once

#include <memory>
#include <string>

#include <arrow/flight/client.h>
#include <arrow/result.h>
#include <arrow/table.h>

namespace quiver {

class QuiverClient {
 public:
  /// \brief Connect to a server, e.g. "grpc://127.0.0.1:8815".
  static arrow::Result<std::unique_ptr<QuiverClient>> Connect(const std::string& location);

  /// \brief Run action `type` with `body`; returns the single result body.
  arrow::Result<std::string> Action(const std::string& type, const std::string& body);
  /// \brief The entries listing (the `entries` action), as a table.
  arrow::Result<std::shared_ptr<arrow::Table>> Entries(const std::string& prefix);

 private:
  explicit QuiverClient(std::unique_ptr<arrow::flight::FlightClient> client)
      : client_(std::move(client)) {}
  std::unique_ptr<arrow::flight::FlightClient> client_;
};

}  // namespace quiver
