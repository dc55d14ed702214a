#include "server/http_observation.h"

#include <vector>

#include <arrow/flight/types.h>

#include "server/actions.h"

namespace quiver {

namespace {

constexpr std::string_view kObjects = "/v1/objects/";
constexpr std::string_view kActions = "/v1/actions/";

bool IsListedAction(std::string_view type) {
  static const std::vector<arrow::flight::ActionType> listed = ListedActions();
  for (const auto& a : listed) {
    if (a.type == type) return true;
  }
  return false;
}

// The route a path belongs to; the object key of an object path in *key.
std::string Route(std::string_view path, std::string* key) {
  if (path.substr(0, kObjects.size()) == kObjects && path.size() > kObjects.size()) {
    *key = std::string(path.substr(kObjects.size()));
    return "/v1/objects";
  }
  if (path.substr(0, kActions.size()) == kActions) {
    std::string_view type = path.substr(kActions.size());
    return "/v1/actions/" + std::string(IsListedAction(type) ? type : "unknown");
  }
  for (std::string_view known : {"/v1/query", "/v1/entries", "/v1/stats", "/metrics", "/healthz",
                                 "/readyz", "/"}) {
    if (path == known) return std::string(known);
  }
  if (path.substr(0, 8) == "/assets/") return "/assets";
  return "other";
}

}  // namespace

HttpObservation ObserveHttp(const HttpExchange& x) {
  HttpObservation o;
  const std::string route = Route(x.path, &o.key);
  const bool known_method = x.method == "GET" || x.method == "HEAD" || x.method == "PUT" ||
                            x.method == "POST" || x.method == "DELETE" || x.method == "OPTIONS";
  o.kind = (known_method ? std::string(x.method) : std::string("OTHER")) + " " + route;
  if (!x.key.empty()) o.key = std::string(x.key);
  o.code = std::to_string(x.status);
  if (x.status >= 400 || x.status < 100) {
    o.outcome = "error";
  } else if (x.status == 304) {
    o.outcome = "not_modified";
  } else if (x.cache == "hit" || x.cache == "bypass") {
    o.outcome = std::string(x.cache);
  } else if (x.cache == "miss") {
    o.outcome = x.joined == "true" ? "join" : "miss";
  } else if (route == "/v1/objects" && (x.method == "GET" || x.method == "HEAD")) {
    o.outcome = "hit";
  } else {
    o.outcome = "ok";
  }
  return o;
}

}  // namespace quiver
