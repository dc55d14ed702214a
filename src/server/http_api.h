// HttpApi: the routes of the HTTP interface (docs/http.md). Parses each request, calls the
// engine's fronts, and answers with stored Arrow IPC bytes or a JSON error naming the problem
// (http_errors.h). Like QuiverFlightService, it holds no cache logic.
//
//   http_objects.cc  GET / HEAD / PUT / DELETE /v1/objects/{key}
//   http_views.cc    ?columns=&filter=&sort=&offset=&limit=&format= and Accept on those
//   http_queries.cc  POST /v1/query, GET /v1/results/{key}
//   http_admin.cc    /v1/entries, /v1/stats, /v1/actions/{type}, /healthz, /readyz
//
// Thread-safety: handlers run concurrently on the server's worker threads; all state is in
// the engine.
#pragma once

#include <string>

#include <httplib.h>

#include "cache/derived_cache.h"
#include "cache/engine.h"

namespace quiver {

class HttpApi {
 public:
  HttpApi(Engine* engine, std::string flight_endpoint)
      : engine_(engine), flight_endpoint_(std::move(flight_endpoint)) {}

  void GetObject(const httplib::Request& req, httplib::Response& res);
  void PutObject(const httplib::Request& req, httplib::Response& res,
                 const httplib::ContentReader& body);
  void DeleteObject(const httplib::Request& req, httplib::Response& res);
  void Query(const httplib::Request& req, httplib::Response& res);
  void GetResult(const httplib::Request& req, httplib::Response& res);
  void Entries(const httplib::Request& req, httplib::Response& res);
  void Stats(const httplib::Request& req, httplib::Response& res);
  void Action(const httplib::Request& req, httplib::Response& res);
  void Ready(const httplib::Request& req, httplib::Response& res);

 private:
  arrow::Status ServeQueryView(const httplib::Request& req, QueryResponse r, ViewRequest view,
                               httplib::Response* res);

  Engine* engine_;
  std::string flight_endpoint_;
};

/// \brief Answer `res` with `status`'s HTTP error (http_errors.h).
void SendError(httplib::Response& res, const arrow::Status& status, bool conditional = false);
/// \brief Answer `res` with an HTTP-layer error.
void SendError(httplib::Response& res, int code, const std::string& kind,
               const std::string& message);
/// \brief The parameters of `req`'s URL query only. (cpp-httplib also parses a body sent as
/// application/x-www-form-urlencoded -- what `curl -d` sends -- into req.params, and a JSON
/// body must not be read as parameters.)
httplib::Params QueryParams(const httplib::Request& req);
/// \brief Fail with Invalid naming the first query parameter of `req` not in `allowed`.
arrow::Status CheckParams(const httplib::Request& req,
                          std::initializer_list<const char*> allowed);
/// \brief True if `req` asks for an Arrow stream (Accept or ?format=arrow).
bool WantsArrow(const httplib::Request& req);

constexpr const char* kArrowStreamType = "application/vnd.apache.arrow.stream";
constexpr const char* kJsonType = "application/json";

}  // namespace quiver
