// Query requests on the wire: the JSON of a CMD descriptor or a DoGet ticket.
//
//   {"source": "demo", "sql": "SELECT ...", "params": [1, "x"], "ttl_s": 60,
//    "preview": false, "cache_nondeterministic": false}
//
// "source" and "sql" are required; unknown fields are refused by name.
#pragma once

#include <string>

#include <arrow/result.h>

#include "cache/query_cache.h"

namespace quiver {

/// \brief True if a ticket is a query (a JSON object with an "sql" or "source" field)
/// rather than an object ticket.
bool LooksLikeQuery(const std::string& ticket);

/// \brief Parse a query request; the error names the bad field.
arrow::Result<QueryRequest> ParseQueryRequest(const std::string& json);

}  // namespace quiver
