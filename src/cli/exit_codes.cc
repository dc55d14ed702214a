#include "cli/exit_codes.h"

#include <iostream>

#include <CLI/CLI.hpp>

namespace quiver {

int ExitCodeFor(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalid:
      return kExitUsage;
    case ErrorKind::kNotFound:
      return kExitNotFound;
    case ErrorKind::kVersionConflict:
      return kExitConflict;
    case ErrorKind::kUnavailable:
      return kExitUnavailable;
    case ErrorKind::kTimeout:
      return kExitTimeout;
    case ErrorKind::kTooLarge:
      return kExitTooLarge;
    case ErrorKind::kDenied:
      return kExitDenied;
    case ErrorKind::kCancelled:
    case ErrorKind::kOther:
      break;
  }
  return kExitError;
}

void Fail(const std::string& command, int code, const std::string& message) {
  std::cout.flush();
  std::cerr << "quiver " << command << ": " << message << std::endl;
  // CLI11 passes a RuntimeError's code through main() without printing anything more.
  throw CLI::RuntimeError(code);
}

void FailCall(const std::string& command, const std::string& server,
              const arrow::Status& status) {
  const ErrorKind kind = ClassifyError(status);
  std::string message = ErrorMessage(status);
  const std::string name = ErrorKindName(kind);
  if (kind == ErrorKind::kUnavailable &&
      (message.find("connect") != std::string::npos ||
       message.find("resolution") != std::string::npos)) {
    message = "cannot reach " + server + " (" + message + ")";
  }
  if (kind != ErrorKind::kOther && message.find(name) == std::string::npos) {
    message = name + ": " + message;
  }
  Fail(command, ExitCodeFor(kind), message);
}

}  // namespace quiver
