// QuiverClient: a small C++ client for Quiver over Arrow Flight, used by the `quiver`
// command: management actions, object puts and gets, and cached queries. It speaks only
// the public wire API (docs/api.md, docs/queries.md), never reaching into server internals.
// Errors are the Flight client's statuses; ClassifyError (client_error.h) tells them apart.
//
// Thread-safety: not safe for concurrent use; make one per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/flight/client.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/table.h>
#include <nlohmann/json.hpp>

#include "client/data_stream.h"

namespace quiver {

struct ClientOptions {
  /// Deadline of each call in seconds (a whole put or get, streaming included).
  /// Default: none.
  double timeout_s = 0;
  /// Bearer token sent with every call (docs/security.md). Default: none.
  std::string token;
  /// grpc+tls: PEM file of the CA that signs the server's certificate. Default: the
  /// system's CAs.
  std::string tls_ca_file;
};

/// The options of a put (docs/api.md "DoPut"), sent as JSON in the first message's
/// app_metadata.
struct PutOptions {
  /// Compare-and-set: commit only if the key's latest version is still this (0: create
  /// only).
  std::optional<uint64_t> if_version;
  std::vector<std::string> depends_on;
  std::vector<std::string> tags;
};

/// Where a put landed: the PutResult's JSON ObjectRef.
struct ObjectRef {
  std::string endpoint;
  std::string key;
  uint64_t version = 0;
};

/// A query request (docs/queries.md "The request").
struct QueryRequest {
  std::string source;
  std::string sql;
  nlohmann::json params = nlohmann::json::array();  // JSON scalars, bound positionally
  std::optional<double> ttl_s;

  /// \brief The request's JSON text, as sent in the ticket.
  std::string ToJson() const;
};

class QuiverClient {
 public:
  /// \brief Connect to a server, e.g. "grpc://127.0.0.1:8815". The connection is made by
  /// the first call; an unreachable server fails there with UNAVAILABLE.
  static arrow::Result<std::unique_ptr<QuiverClient>> Connect(const std::string& location,
                                                              ClientOptions options = {});

  /// \brief Run action `type` with `body`; returns the single result body.
  arrow::Result<std::string> Action(const std::string& type, const std::string& body);
  /// \brief The entries listing (the `entries` action), as a table.
  arrow::Result<std::shared_ptr<arrow::Table>> Entries(const std::string& prefix);

  /// \brief Store every batch of `batches` as the next version of `key`, batch by batch.
  ///
  /// If `batches` fails, the put is aborted (a {"abort": reason} message: closing the
  /// stream would commit what was sent), nothing is stored, the reader's error is
  /// returned and `*input_failed` (if given) is set.
  arrow::Result<ObjectRef> Put(const std::string& key, arrow::RecordBatchReader* batches,
                               const PutOptions& options, const ProgressFn& progress = {},
                               bool* input_failed = nullptr);

  /// \brief Read `key` (its latest version, or `version`). Fails at once if it is missing.
  arrow::Result<std::shared_ptr<DataStream>> Get(const std::string& key,
                                                 std::optional<uint64_t> version = {},
                                                 ProgressFn progress = {});

  /// \brief Run a query through the cache (a DoGet whose ticket is the request).
  arrow::Result<std::shared_ptr<DataStream>> Query(const QueryRequest& request,
                                                   ProgressFn progress = {});

 private:
  QuiverClient(std::unique_ptr<arrow::flight::FlightClient> client, ClientOptions options);
  arrow::flight::FlightCallOptions CallOptions() const;

  std::unique_ptr<arrow::flight::FlightClient> client_;
  ClientOptions options_;
};

}  // namespace quiver
