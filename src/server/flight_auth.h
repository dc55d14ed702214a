// AuthMiddleware: who a Flight call is (server/auth.h), read once from its `authorization`
// header when the call starts.
//
// A call with a bad credential is refused at once (UNAUTHENTICATED). A call with none gets no
// identity and is refused by the handler (CallIdentity), except a DoGet of a node ticket,
// which carries its own proof (the cluster secret's HMAC, node_ticket.h). A Handshake with
// basic credentials whose password is a valid token answers `authorization: Bearer <token>`,
// which is what Flight clients' basic-token authentication expects.
//
// Thread-safety: as RequestMiddleware (flight_middleware.h): one middleware per call; the
// factory is shared and thread-safe.
#pragma once

#include <memory>
#include <string>

#include <arrow/flight/server_auth.h>
#include <arrow/flight/server_middleware.h>

#include "server/auth.h"
#include "server/tenant_scope.h"

namespace quiver {

class AuthMiddleware final : public arrow::flight::ServerMiddleware {
 public:
  static constexpr const char* kName = "quiver-auth";

  AuthMiddleware(std::shared_ptr<const Identity> identity, std::string bearer_reply)
      : identity_(std::move(identity)), bearer_reply_(std::move(bearer_reply)) {}

  std::string name() const override { return kName; }
  void SendingHeaders(arrow::flight::AddCallHeaders* outgoing_headers) override;
  void CallCompleted(const arrow::Status&) override {}

  /// Null: the call presented no credentials (and auth is on).
  const std::shared_ptr<const Identity>& identity() const { return identity_; }

 private:
  std::shared_ptr<const Identity> identity_;
  std::string bearer_reply_;  // the token, answered to a basic-auth Handshake
};

class AuthMiddlewareFactory final : public arrow::flight::ServerMiddlewareFactory {
 public:
  /// `auth` must outlive the server.
  explicit AuthMiddlewareFactory(const Authenticator* auth) : auth_(auth) {}

  arrow::Status StartCall(const arrow::flight::CallInfo& info,
                          const arrow::flight::ServerCallContext& context,
                          std::shared_ptr<arrow::flight::ServerMiddleware>* middleware) override;

 private:
  const Authenticator* auth_;
};

/// \brief The identity of the call, or UNAUTHENTICATED if it presented none. A server
/// without the factory (tests) treats every call as Identity::Anonymous().
arrow::Result<std::shared_ptr<const Identity>> CallIdentity(
    const arrow::flight::ServerCallContext& context);

/// An authorized caller and the namespace its keys live in.
struct Caller {
  std::shared_ptr<const Identity> who;
  TenantScope scope;
};

/// \brief CallIdentity, then RequireRole; the caller and its scope.
arrow::Result<Caller> Authorize(const arrow::flight::ServerCallContext& context, Role role,
                                std::string_view what);

}  // namespace quiver
