#include "server/http_auth.h"

#include "server/actions.h"

namespace quiver {

namespace {

thread_local std::shared_ptr<const Identity> caller;

bool StartsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

std::optional<Role> HttpRequiredRole(const std::string& method, const std::string& path) {
  if (!StartsWith(path, "/v1/") && path != "/metrics") return std::nullopt;
  if (StartsWith(path, "/v1/actions/")) return ActionRole(path.substr(12));
  if (StartsWith(path, "/v1/objects/") && (method == "PUT" || method == "DELETE")) {
    return Role::kWriter;
  }
  return Role::kReader;  // reads, queries (granted sources only), listings, stats, metrics
}

std::string HttpRouteWhat(const std::string& method, const std::string& path) {
  if (StartsWith(path, "/v1/actions/")) return "run action '" + path.substr(12) + "'";
  if (method == "PUT") return "put objects";
  if (method == "DELETE") return "delete objects";
  return "read";
}

void SetHttpCaller(std::shared_ptr<const Identity> who) { caller = std::move(who); }

const Identity& HttpCaller() { return caller ? *caller : *Identity::Anonymous(); }

const Identity* HttpCallerIfSet() { return caller.get(); }

}  // namespace quiver
