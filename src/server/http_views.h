// The data cache on HTTP (docs/http.md, "Slices, projections and formats"): query parameters
// (?columns=&filter=&sort=&offset=&limit=&format=) and the Accept header turned into a
// ViewRequest (server/view_request.h, cache/derived_cache.h), and a served view turned into a
// response -- the derived entry's stored IPC stream, or its encoded bytes (Parquet, CSV, ...),
// streamed as stored.
//
// Thread-safety: pure functions of their arguments.
#pragma once

#include <optional>
#include <set>
#include <string>

#include <arrow/result.h>
#include <httplib.h>

#include "cache/derived_cache.h"

namespace quiver {

/// \brief The view `req` asks of entry `key`, or std::nullopt for a plain read (no view
/// parameter, and an Arrow stream acceptable). `?format=` wins over Accept. Parameters other
/// than the view's and `also_allowed` are refused by name; an Accept naming nothing Quiver
/// serves is NotAcceptable (406).
arrow::Result<std::optional<ViewRequest>> HttpViewRequest(const httplib::Request& req,
                                                          const std::string& key,
                                                          const std::set<std::string>& also_allowed);

/// \brief Answer with `view` (its ETag, source, cache outcome as headers; 304 if the client's
/// If-None-Match names it).
arrow::Status SendView(const httplib::Request& req, const ViewResult& view, int64_t now_ms,
                       httplib::Response* res);

}  // namespace quiver
