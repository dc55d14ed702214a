#include "server/http_errors.h"

#include <nlohmann/json.hpp>

#include "common/rejection.h"
#include "format/table_encoding.h"
#include "index/index.h"
#include "server/auth.h"
#include "storage/blob_store.h"

namespace quiver {

using nlohmann::json;

HttpError MakeHttpError(int status, const std::string& kind, const std::string& message) {
  json body = {{"error", kind}, {"message", message}};
  return {status, body.dump()};
}

HttpError ToHttpError(const arrow::Status& st, bool conditional) {
  const std::string& message = st.message();
  bool forbidden = false;
  if (IsAuthError(st, &forbidden)) {
    return forbidden ? MakeHttpError(403, "forbidden", message)
                     : MakeHttpError(401, "unauthenticated", message);
  }
  if (IsIndexUnavailable(st) || IsStoreUnavailable(st)) {
    return MakeHttpError(503, "unavailable", message);
  }
  if (auto rejection = RejectionOf(st)) {
    json body = json::parse(rejection->ToString(), nullptr, /*allow_exceptions=*/false);
    if (!body.is_object()) body = json::object();
    body["message"] = message;
    int status = 500;
    switch (rejection->kind()) {
      case RejectionKind::kTooLarge:
        status = 413;
        break;
      case RejectionKind::kNotAdmitted:
        status = 507;  // Insufficient Storage: no room in the budget
        break;
      case RejectionKind::kBusy:
        status = 429;
        break;
      case RejectionKind::kTimedOut:
        status = 504;
        break;
    }
    return {status, body.dump()};
  }
  if (IsNotAcceptable(st)) return MakeHttpError(406, "not_acceptable", message);
  if (st.IsKeyError()) return MakeHttpError(404, "not_found", message);
  if (st.IsAlreadyExists()) {
    return conditional ? MakeHttpError(412, "precondition_failed", message)
                       : MakeHttpError(409, "version_conflict", message);
  }
  if (st.IsInvalid() || st.IsTypeError() || st.IsIndexError()) {
    return MakeHttpError(400, "invalid_request", message);
  }
  if (st.IsCapacityError()) return MakeHttpError(413, "too_large", message);
  if (st.IsCancelled()) return MakeHttpError(409, "cancelled", message);
  if (st.IsNotImplemented()) return MakeHttpError(404, "not_found", message);
  return MakeHttpError(500, "internal", message);
}

}  // namespace quiver
