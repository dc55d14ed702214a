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
#include <arrow/status.h>

#include "exec/source.h"

namespace quiver {

/// Marks a status from JoinFill or a PeerFill as "this node cannot stream from that one" (not
/// reachable, unavailable, too slow, refusing this node): the follower waits for the result,
/// and takes over if the lease expires. Any other error is the fill's own end -- it failed,
/// it ended, or it cannot be joined -- which a follower must not answer by running the
/// query again at once.
class PeerUnreachableDetail final : public arrow::StatusDetail {
 public:
  static constexpr const char* kTypeId = "quiver::peer::unreachable";
  const char* type_id() const override { return kTypeId; }
  std::string ToString() const override { return "peer unreachable"; }
};

inline arrow::Status PeerUnreachable(const arrow::Status& status) {
  return arrow::Status(arrow::StatusCode::IOError, status.message(),
                       std::make_shared<PeerUnreachableDetail>());
}

inline bool IsPeerUnreachable(const arrow::Status& status) {
  return !status.ok() && status.detail() &&
         std::string(status.detail()->type_id()) == PeerUnreachableDetail::kTypeId;
}

/// Another node's fill, being streamed to this node.
class PeerFill : public QueryStream {
 public:
  /// \brief Wait for the filling node's first answer (the schema; schema() is valid after).
  /// Fails if that node no longer runs the fill (IsPeerUnreachable() tells why). Cancel(),
  /// from any thread, interrupts it.
  virtual arrow::Status Start() = 0;
};

class PeerClient {
 public:
  virtual ~PeerClient() = default;
  /// \brief Begin streaming the fill of query key `key` (64 hex digits) that the node at
  /// `endpoint` runs under fill lease token `token`, from its first batch. Fails quickly,
  /// with a PeerUnreachable() status, if the node does not answer when asked (a node that
  /// is paused or partitioned); one that stops answering later is the caller's to notice.
  virtual arrow::Result<std::unique_ptr<PeerFill>> JoinFill(const std::string& endpoint,
                                                            const std::string& key,
                                                            uint64_t token) = 0;
};

}  // namespace quiver
