// View tickets: a DoGet ticket asking for a slice, projection, filter, sort or other encoding
// of a cached object or query result -- served by the data cache (cache/derived_cache.h).
//
//   {"key": "s/o", "version": 3, "columns": ["a", "b"], "filter": "a > 1 and b = 'x'",
//    "sort": ["-a", "b"], "offset": 10, "limit": 100, "format": "parquet"}
//
// "key" is an object key or a query result's 64 hex digits (the "key" of a query's response);
// every other field is optional. It is a view ticket, not an object ticket, when it has
// "key" and any of columns / filter / sort / offset / limit / format; query tickets have
// "sql" or "source", artifact tickets "artifact". Unknown fields are rejected by name.
// docs/views.md has the whole format and what the first batch's app_metadata says.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include <arrow/flight/server.h>
#include <arrow/result.h>

#include "cache/derived_cache.h"

namespace quiver {

class Engine;
struct Identity;

/// \brief True if `ticket` is a view ticket (see above).
bool LooksLikeView(const std::string& ticket);
/// \brief Parse a view ticket; the error names the bad field.
arrow::Result<ViewRequest> ParseViewRequest(const std::string& ticket);
/// \brief A view from HTTP query parameters (for GET /v1/objects/{key}): version=N,
/// columns=a,b (or repeated), filter=..., sort=-a,b (or repeated), offset=N, limit=N,
/// format=NAME. `key` is the key from the path. Parameters other than these and
/// `also_allowed` are refused by name. `format` is left at Arrow stream when absent (the
/// caller may take it from the Accept header instead).
arrow::Result<ViewRequest> ParseViewParams(const std::string& key,
                                           const std::multimap<std::string, std::string>& params,
                                           const std::set<std::string>& also_allowed = {});

/// \brief The app_metadata of a view's first batch: source key and version, the derived
/// key, whether it was a cache hit, the format.
std::string ViewResultJson(const ViewResult& result);

/// \brief Serve a view ticket: the derived entry's stored stream (for other formats, the
/// stored stream of encoded pieces; see DerivedCache). A view that changes nothing is the
/// source entry itself, streamed as stored. A tenant's ticket names a key of its namespace
/// (mapped into it, and shown back without the tenant), or a query result it may read
/// (server/result_access.h).
arrow::Result<std::unique_ptr<arrow::flight::FlightDataStream>> ServeViewTicket(
    Engine* engine, const std::string& ticket, const Identity& who);

}  // namespace quiver
