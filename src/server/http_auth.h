// The HTTP interface's side of authentication (server/auth.h): which role each route needs,
// and the caller of the request a worker thread is serving.
//
// Thread-safety: the caller is kept per worker thread; cpp-httplib runs a request's
// pre-routing handler and its route handler on the same thread, one request at a time.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "server/auth.h"

namespace quiver {

/// \brief The role `method` `path` needs; nullopt for the public routes (/healthz, /readyz
/// and the dashboard's static files, which hold no data).
std::optional<Role> HttpRequiredRole(const std::string& method, const std::string& path);
/// \brief What a caller needing `role` is refused, in errors ("put objects", ...).
std::string HttpRouteWhat(const std::string& method, const std::string& path);

/// \brief The caller of the request this thread serves (set before routing).
void SetHttpCaller(std::shared_ptr<const Identity> who);
/// \brief That caller; Identity::Anonymous() if none was set (auth off, tests).
const Identity& HttpCaller();
/// \brief That caller, or null (auth off, a public route, or the request was refused).
const Identity* HttpCallerIfSet();

}  // namespace quiver
