// Node tickets: DoGet tickets that only the nodes of one cache can make, for a node to stream
// a fill another node runs (a cross-node live join).
//
//   quiver-node:{"join": "<64 hex key>", "token": <fill lease token>, "from": "<node id>",
//                "mac": "<hex HMAC-SHA256 over join|token|from with the cluster secret>"}
//
// The cluster secret lives in the shared index (Index::ClusterSecret), which clients cannot
// read, so a client cannot make a node ticket; a ticket names one fill lease, so it is worth
// nothing once that fill ended.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include <arrow/result.h>
#include <arrow/status.h>

namespace quiver {

inline constexpr const char* kNodeTicketPrefix = "quiver-node:";

struct NodeJoin {
  std::string key;  ///< query key, 64 hex digits
  uint64_t token = 0;
  std::string from;
};

/// \brief True if `ticket` claims to be a node ticket (it may still be forged).
bool IsNodeTicket(const std::string& ticket);
/// \brief A ticket to join `join.key`'s fill, signed with `secret`.
std::string MakeNodeTicket(const NodeJoin& join, const std::string& secret);
/// \brief Parse and verify a node ticket signed with `secret`. A malformed one is Invalid; one
/// whose signature does not verify (forged, or signed with another secret) is Flight's
/// UNAUTHENTICATED (IsNodeTicketRefused()).
arrow::Result<NodeJoin> VerifyNodeTicket(const std::string& ticket, const std::string& secret);
/// \brief True for a node ticket refused for its signature: by VerifyNodeTicket, or by the
/// node a DoGet sent it to.
bool IsNodeTicketRefused(const arrow::Status& status);

}  // namespace quiver
