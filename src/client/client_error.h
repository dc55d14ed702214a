// ClientError: what kind of failure a Quiver call ended with, recovered from the Arrow
// status the Flight client returns (docs/api.md "Errors"), so that callers such as the
// `quiver` command can react to it (distinct exit codes) and show the server's message
// without the transport's wrapping ("Flight returned not found error, with message: ...").
//
// Thread-safety: pure functions.
#pragma once

#include <string>

#include <arrow/status.h>

namespace quiver {

enum class ErrorKind {
  kOther,            // anything below; e.g. an internal server error
  kInvalid,          // INVALID_ARGUMENT: bad key, option, request or data
  kNotFound,         // NOT_FOUND: no such key or version
  kVersionConflict,  // ALREADY_EXISTS: a compare-and-set (if_version) did not hold
  kUnavailable,      // UNAVAILABLE: server unreachable, or its index/store away, or busy
  kTimeout,          // DEADLINE_EXCEEDED: the call's timeout passed
  kTooLarge,         // over max_object_bytes / max_entry_bytes, or not admitted by the budget
  kCancelled,        // CANCELLED: e.g. a dependency was invalidated while a put streamed
  kDenied,           // UNAUTHENTICATED or PERMISSION_DENIED: no, a bad, or a too weak token
};

/// \brief Classify a status returned by a Flight call to a Quiver server.
ErrorKind ClassifyError(const arrow::Status& status);

/// \brief The server's own message, without the transport's prefixes and detail suffixes.
std::string ErrorMessage(const arrow::Status& status);

/// \brief A short name of the kind ("not found", "version conflict", ...).
const char* ErrorKindName(ErrorKind kind);

}  // namespace quiver
