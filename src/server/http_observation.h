// HttpObservation: what an HTTP request was, for metrics and the request log -- its kind
// ("GET /v1/objects", "POST /v1/actions/invalidate"), key, outcome and code.
//
// Kinds are route names, never raw paths (a path holds a key, and labels must stay few): a
// path that matches no route is "other".
//
// Thread-safety: a pure function.
#pragma once

#include <string>
#include <string_view>

namespace quiver {

/// What the HTTP server knows when a response has been sent.
struct HttpExchange {
  std::string_view method;
  std::string_view path;
  int status = 0;
  std::string_view cache;   ///< X-Quiver-Cache of a query response: hit, miss, bypass
  std::string_view joined;  ///< X-Quiver-Joined: "true" when a miss joined a running fill
  std::string_view key;     ///< X-Quiver-Key, if the response names one
};

struct HttpObservation {
  std::string kind;
  std::string key;
  std::string outcome;  ///< hit, miss, join, bypass, not_modified, ok, error
  std::string code;     ///< the HTTP status, e.g. "404"
};

HttpObservation ObserveHttp(const HttpExchange& exchange);

}  // namespace quiver
