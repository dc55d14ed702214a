// HttpApi: management -- /v1/entries, /v1/stats, /v1/actions/{type}, /readyz (docs/http.md,
// "Management"), and the helpers every route shares.

#include <arrow/array/builder_binary.h>
#include <arrow/array/builder_primitive.h>
#include <arrow/table.h>
#include <nlohmann/json.hpp>

#include "server/actions.h"
#include "server/entries_table.h"
#include "server/http_api.h"
#include "server/http_auth.h"
#include "server/http_errors.h"
#include "server/tenant_scope.h"

namespace quiver {

using nlohmann::json;

void SendError(httplib::Response& res, const arrow::Status& status, bool conditional) {
  auto error = ToHttpError(status, conditional);
  res.status = error.status;
  if (error.status == 429 || error.status == 503) res.set_header("Retry-After", "1");
  res.set_content(error.body, kJsonType);
}

void SendError(httplib::Response& res, int code, const std::string& kind,
               const std::string& message) {
  json body = {{"error", kind}, {"message", message}};
  res.status = code;
  res.set_content(body.dump(), kJsonType);
}

httplib::Params QueryParams(const httplib::Request& req) {
  httplib::Params params;
  const auto mark = req.target.find('?');
  if (mark != std::string::npos) httplib::detail::parse_query_text(req.target.substr(mark + 1), params);
  return params;
}

arrow::Status CheckParams(const httplib::Request& req,
                          std::initializer_list<const char*> allowed) {
  for (const auto& [name, value] : QueryParams(req)) {
    bool known = false;
    for (const char* a : allowed) known = known || name == a;
    if (!known) {
      std::string list;
      for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
      return arrow::Status::Invalid("unknown query parameter '", name, "' for ", req.method, " ",
                                    req.path, list.empty() ? " (it takes none)" : " (known: " + list + ")");
    }
  }
  return arrow::Status::OK();
}

bool WantsArrow(const httplib::Request& req) {
  if (req.has_param("format")) return req.get_param_value("format") == "arrow";
  return req.get_header_value("Accept").find(kArrowStreamType) != std::string::npos;
}

namespace {

// Every numeric leaf of `j` as a row (dotted path, value).
void Flatten(const json& j, const std::string& path, arrow::StringBuilder* names,
             arrow::DoubleBuilder* values, arrow::Status* st) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      Flatten(v, path.empty() ? k : path + "." + k, names, values, st);
    }
  } else if (j.is_number() || j.is_boolean()) {
    if (!st->ok()) return;
    *st = names->Append(path);
    if (st->ok()) *st = values->Append(j.is_boolean() ? (j.get<bool>() ? 1.0 : 0.0)
                                                      : j.get<double>());
  }
}

arrow::Result<std::shared_ptr<arrow::Buffer>> StatsTable(const json& stats) {
  arrow::StringBuilder names;
  arrow::DoubleBuilder values;
  arrow::Status st;
  Flatten(stats, "", &names, &values, &st);
  ARROW_RETURN_NOT_OK(st);
  ARROW_ASSIGN_OR_RAISE(auto name_array, names.Finish());
  ARROW_ASSIGN_OR_RAISE(auto value_array, values.Finish());
  auto table = arrow::Table::Make(
      arrow::schema({arrow::field("name", arrow::utf8(), false),
                     arrow::field("value", arrow::float64(), false)}),
      {name_array, value_array});
  return TableToIpc(*table);
}

void SendBuffer(httplib::Response& res, const std::string& bytes, const char* type) {
  res.set_header("Cache-Control", "no-store");
  res.set_content(bytes, type);
}

}  // namespace

void HttpApi::Entries(const httplib::Request& req, httplib::Response& res) {
  auto st = [&]() -> arrow::Status {
    ARROW_RETURN_NOT_OK(CheckParams(req, {"prefix"}));
    json body = json::object();
    if (req.has_param("prefix")) body["prefix"] = req.get_param_value("prefix");
    ARROW_ASSIGN_OR_RAISE(auto ipc, RunAction(engine_, "entries", body.dump(), HttpCaller()));
    SendBuffer(res, ipc, kArrowStreamType);
    return arrow::Status::OK();
  }();
  if (!st.ok()) SendError(res, st);
}

void HttpApi::Stats(const httplib::Request& req, httplib::Response& res) {
  auto st = [&]() -> arrow::Status {
    ARROW_RETURN_NOT_OK(CheckParams(req, {"format"}));
    if (req.has_param("format") && req.get_param_value("format") != "arrow" &&
        req.get_param_value("format") != "json") {
      return arrow::Status::Invalid("/v1/stats format must be json or arrow, got '",
                                    req.get_param_value("format"), "'");
    }
    ARROW_ASSIGN_OR_RAISE(auto text, RunAction(engine_, "stats", "", HttpCaller()));
    if (!WantsArrow(req)) {
      SendBuffer(res, text, kJsonType);
      return arrow::Status::OK();
    }
    ARROW_ASSIGN_OR_RAISE(auto ipc, StatsTable(json::parse(text)));
    SendBuffer(res, ipc->ToString(), kArrowStreamType);
    return arrow::Status::OK();
  }();
  if (!st.ok()) SendError(res, st);
}

void HttpApi::Action(const httplib::Request& req, httplib::Response& res) {
  const std::string type = req.matches[1].str();
  auto st = [&]() -> arrow::Status {
    ARROW_RETURN_NOT_OK(CheckParams(req, {}));
    auto out = RunAction(engine_, type, req.body, HttpCaller());
    if (!out.ok()) {
      return arrow::Status(out.status().code(),
                           "action '" + type + "': " + out.status().message(),
                           out.status().detail());
    }
    SendBuffer(res, *out, type == "entries" ? kArrowStreamType : kJsonType);
    return arrow::Status::OK();
  }();
  if (!st.ok()) SendError(res, st);
}

void HttpApi::Ready(const httplib::Request&, httplib::Response& res) {
  auto health = engine_->options().index->Health();
  json body = {{"status", health.available ? "ready" : "unavailable"},
               {"index", health.state}};
  if (!health.detail.empty()) body["detail"] = health.detail;
  res.status = health.available ? 200 : 503;
  res.set_content(body.dump(), kJsonType);
}

}  // namespace quiver
