#include "server/flight_auth.h"

#include <arrow/flight/server.h>
#include <arrow/flight/types.h>
#include <arrow/util/base64.h>

#include "server/flight_errors.h"
#include "server/flight_middleware.h"

namespace quiver {

namespace flight = arrow::flight;

namespace {

constexpr const char* kAuthorizationHeader = "authorization";

}  // namespace

void AuthMiddleware::SendingHeaders(flight::AddCallHeaders* outgoing_headers) {
  if (!bearer_reply_.empty()) {
    outgoing_headers->AddHeader(kAuthorizationHeader, "Bearer " + bearer_reply_);
  }
}

arrow::Status AuthMiddlewareFactory::StartCall(
    const flight::CallInfo& info, const flight::ServerCallContext& context,
    std::shared_ptr<flight::ServerMiddleware>* middleware) {
  const auto& headers = context.incoming_headers();
  auto it = headers.find(kAuthorizationHeader);
  if (!auth_->enabled() || it == headers.end()) {
    *middleware = std::make_shared<AuthMiddleware>(
        auth_->enabled() ? nullptr : Identity::Anonymous(), "");
    return arrow::Status::OK();
  }
  const std::string_view value = it->second;
  ARROW_ASSIGN_OR_RAISE(auto identity, auth_->Authenticate(value));
  ARROW_RETURN_NOT_OK(ToFlightError(auth_->Throttle(*identity)));
  std::string reply;
  if (info.method == flight::FlightMethod::Handshake && value.size() > 6 &&
      (value.substr(0, 6) == "Basic " || value.substr(0, 6) == "basic ")) {
    // Authenticate accepted it, so the password is a valid token: hand it back as bearer.
    auto decoded = arrow::util::base64_decode(value.substr(6));
    if (decoded.ok()) reply = decoded->substr(decoded->find(':') + 1);
  }
  *middleware = std::make_shared<AuthMiddleware>(std::move(identity), std::move(reply));
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<const Identity>> CallIdentity(
    const flight::ServerCallContext& context) {
  auto* m = dynamic_cast<AuthMiddleware*>(context.GetMiddleware(AuthMiddleware::kName));
  if (m == nullptr) return Identity::Anonymous();
  if (m->identity()) return m->identity();
  return flight::MakeFlightError(flight::FlightStatusCode::Unauthenticated,
                                 "authentication required: send 'authorization: Bearer <token>'",
                                 R"({"error":"unauthenticated"})");
}

arrow::Result<Caller> Authorize(const flight::ServerCallContext& context, Role role,
                                std::string_view what) {
  ARROW_ASSIGN_OR_RAISE(auto who, CallIdentity(context));
  if (RequestMiddleware* call = CallRequest(context)) call->set_identity(who->name, who->tenant);
  ARROW_RETURN_NOT_OK(RequireRole(*who, role, what));
  TenantScope scope = TenantScope::Of(*who);
  return Caller{std::move(who), std::move(scope)};
}

}  // namespace quiver
