// PeerClient: how a node reads a fill that another node of the cluster is running (a
// cross-node live join), so that its own clients get their first batch about as early as the
// filling node's.
//
// The cache only sees this interface; the server module implements it over Arrow Flight (the
// filling node's endpoint is in its fill lease; the ticket is one only nodes can make).
//
// Thread-safety: JoinFill may be called concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <arrow/result.h>

#include "exec/source.h"

namespace quiver {

/// Another node's fill, being streamed to this node.
class PeerFill : public QueryStream {
 public:
  /// \brief Wait for the filling node's first answer (the schema; schema() is valid after).
  /// Fails if that node no longer runs the fill. Cancel(), from any thread, interrupts it.
  virtual arrow::Status Start() = 0;
};

class PeerClient {
 public:
  virtual ~PeerClient() = default;
  /// \brief Begin streaming the fill of query key `key` (64 hex digits) that the node at
  /// `endpoint` runs under fill lease token `token`, from its first batch. Fails quickly if
  /// the node does not answer (a node that is paused or partitioned).
  virtual arrow::Result<std::unique_ptr<PeerFill>> JoinFill(const std::string& endpoint,
                                                            const std::string& key,
                                                            uint64_t token) = 0;
};

}  // namespace quiver
