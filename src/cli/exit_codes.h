// Exit codes of the `quiver` client commands and the one way they end with an error:
// "quiver COMMAND: message" on stderr and a code that tells the kind of failure apart
// (docs/cli.md "Exit codes").
//
// Thread-safety: free functions.
#pragma once

#include <string>

#include <arrow/status.h>

#include "client/client_error.h"

namespace quiver {

enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,        // anything else (server internal error, writing the output, ...)
  kExitUsage = 2,        // bad arguments or input: options, key, file, format, invalid request
  kExitNotFound = 3,     // no such key or version
  kExitConflict = 4,     // --if-version did not hold
  kExitUnavailable = 5,  // server unreachable, or unavailable (index/store away, busy)
  kExitTimeout = 6,      // --timeout passed
  kExitTooLarge = 7,     // over the server's size limits, or not admitted
  kExitDenied = 8,       // no token, a wrong one, or one without the role or source needed
};

/// \brief The exit code for a failed call's kind.
int ExitCodeFor(ErrorKind kind);

/// \brief Print "quiver COMMAND: MESSAGE" to stderr and end the command with `code`.
[[noreturn]] void Fail(const std::string& command, int code, const std::string& message);

/// \brief End the command for a failed call to `server`: the kind, the server's message,
/// and the kind's exit code.
[[noreturn]] void FailCall(const std::string& command, const std::string& server,
                           const arrow::Status& status);

}  // namespace quiver
