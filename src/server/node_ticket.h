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
/// \brief Parse and verify a node ticket; an unsigned, forged or malformed one is refused.
arrow::Result<NodeJoin> VerifyNodeTicket(const std::string& ticket, const std::string& secret);

}  // namespace quiver
