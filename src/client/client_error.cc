#include "client/client_error.h"

#include <string_view>

#include <arrow/flight/types.h>
#include <nlohmann/json.hpp>

namespace quiver {

namespace flight = arrow::flight;

namespace {

bool Contains(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

// The JSON object a Quiver server puts in a Flight error's extra_info ({"error": NAME}).
std::string ExtraInfoError(const std::shared_ptr<flight::FlightStatusDetail>& detail) {
  if (!detail || detail->extra_info().empty()) return "";
  auto j = nlohmann::json::parse(detail->extra_info(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("error") || !j["error"].is_string()) return "";
  return j["error"].get<std::string>();
}

}  // namespace

ErrorKind ClassifyError(const arrow::Status& status) {
  if (status.ok()) return ErrorKind::kOther;
  auto detail = flight::FlightStatusDetail::UnwrapStatus(status);
  const std::string extra = ExtraInfoError(detail);
  const std::string& message = status.message();
  if (extra == "too_large" || extra == "not_admitted") return ErrorKind::kTooLarge;
  if (extra == "unavailable" || extra == "busy") return ErrorKind::kUnavailable;
  if (extra == "timed_out") return ErrorKind::kTimeout;
  if (detail) {
    switch (detail->code()) {
      case flight::FlightStatusCode::Unavailable:
        return ErrorKind::kUnavailable;
      case flight::FlightStatusCode::TimedOut:
        return ErrorKind::kTimeout;
      case flight::FlightStatusCode::Cancelled:
        return ErrorKind::kCancelled;
      case flight::FlightStatusCode::Unauthenticated:
      case flight::FlightStatusCode::Unauthorized:
        return ErrorKind::kDenied;
      default:
        break;
    }
  }
  // The server's Arrow status code travels in the x-arrow-status trailer, and Arrow's
  // client restores it: NOT_FOUND arrives as KeyError, ALREADY_EXISTS as AlreadyExists.
  if (status.IsAlreadyExists() || Contains(message, "version conflict")) {
    return ErrorKind::kVersionConflict;
  }
  if (status.IsKeyError()) return ErrorKind::kNotFound;
  // Before the error contract's extra_info: the size refusals are recognised by their text.
  if (status.IsCapacityError() || Contains(message, "resource exhausted") ||
      Contains(message, "not admitted")) {
    return Contains(message, "queue") ? ErrorKind::kUnavailable : ErrorKind::kTooLarge;
  }
  if (status.IsInvalid() || status.IsTypeError()) return ErrorKind::kInvalid;
  if (status.IsCancelled()) return ErrorKind::kCancelled;
  return ErrorKind::kOther;
}

std::string ErrorMessage(const arrow::Status& status) {
  std::string text = status.message();
  // "Flight returned not found error, with message: X" and similar transport wrappings.
  for (std::string_view marker : {"with message: ", "Flight RPC failed with message: "}) {
    if (auto at = text.find(marker); at != std::string::npos && at < 64) {
      text = text.substr(at + marker.size());
    }
  }
  // Arrow's gRPC client appends its own context (". gRPC client debug context: ...",
  // ". Client context: ...") and the restored status ". Detail: <FlightStatusDetail>".
  for (std::string_view tail : {". gRPC client debug context:", ". Client context:",
                                ". Additionally, could not finish", ". Detail: "}) {
    if (auto at = text.find(tail); at != std::string::npos) text.resize(at);
  }
  return text;
}

const char* ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalid:
      return "invalid request";
    case ErrorKind::kNotFound:
      return "not found";
    case ErrorKind::kVersionConflict:
      return "version conflict";
    case ErrorKind::kUnavailable:
      return "unavailable";
    case ErrorKind::kTimeout:
      return "timed out";
    case ErrorKind::kTooLarge:
      return "too large";
    case ErrorKind::kCancelled:
      return "cancelled";
    case ErrorKind::kDenied:
      return "denied";
    case ErrorKind::kOther:
      break;
  }
  return "error";
}

}  // namespace quiver
