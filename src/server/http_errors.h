// The HTTP interface's error mapping: each engine status to one documented HTTP status and a
// JSON body {"error": KIND, "message": ..., ...} naming the problem (docs/http.md, "Errors").
// The counterpart of flight_errors.h; both read the same RejectionDetail.
//
// Thread-safety: pure functions.
#pragma once

#include <string>

#include <arrow/status.h>

namespace quiver {

struct HttpError {
  int status = 500;
  std::string body;  ///< JSON
};

/// \brief Map `st` (an error). `conditional`: the request carried a precondition (If-Match),
/// so a version conflict is 412 Precondition Failed rather than 409 Conflict.
HttpError ToHttpError(const arrow::Status& st, bool conditional = false);

/// \brief An error of the HTTP layer itself (bad path, header or body): `status` with
/// {"error": kind, "message": message}.
HttpError MakeHttpError(int status, const std::string& kind, const std::string& message);

}  // namespace quiver
