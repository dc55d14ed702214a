#include "server/query_request.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace quiver {

using nlohmann::json;

bool LooksLikeQuery(const std::string& ticket) {
  if (ticket.empty() || ticket.front() != '{') return false;
  json j = json::parse(ticket, nullptr, /*allow_exceptions=*/false);
  return !j.is_discarded() && j.is_object() && (j.contains("sql") || j.contains("source"));
}

arrow::Result<QueryRequest> ParseQueryRequest(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return arrow::Status::Invalid("a query must be a JSON object like "
                                  "{\"source\": \"demo\", \"sql\": \"SELECT 1\"}");
  }
  QueryRequest req;
  auto need_string = [&](const char* field, std::string* out) -> arrow::Status {
    if (!j.contains(field) || !j[field].is_string()) {
      return arrow::Status::Invalid("query field '", field, "' is required and must be a string");
    }
    *out = j[field].get<std::string>();
    return arrow::Status::OK();
  };
  ARROW_RETURN_NOT_OK(need_string("source", &req.source));
  ARROW_RETURN_NOT_OK(need_string("sql", &req.sql));
  for (auto& [name, value] : j.items()) {
    if (name == "source" || name == "sql") continue;
    if (name == "params") {
      if (!value.is_array()) return arrow::Status::Invalid("query field 'params' must be an array");
      req.params_json = value.dump();
    } else if (name == "ttl_s") {
      if (!value.is_number()) return arrow::Status::Invalid("query field 'ttl_s' must be a number");
      req.ttl_s = value.get<double>();
    } else if (name == "stale_while_revalidate_s") {
      if (!value.is_number() || !(value.get<double>() >= 0)) {
        return arrow::Status::Invalid(
            "query field 'stale_while_revalidate_s' must be a number >= 0");
      }
      req.stale_while_revalidate_s = value.get<double>();
    } else if (name == "preview") {
      if (!value.is_boolean()) return arrow::Status::Invalid("query field 'preview' must be a bool");
      req.preview = value.get<bool>();
    } else if (name == "cache_nondeterministic") {
      if (!value.is_boolean()) {
        return arrow::Status::Invalid("query field 'cache_nondeterministic' must be a bool");
      }
      req.cache_nondeterministic = value.get<bool>();
    } else if (name == "depends_on" || name == "tags") {
      if (!value.is_array() || !std::all_of(value.begin(), value.end(),
                                            [](const json& v) { return v.is_string(); })) {
        return arrow::Status::Invalid("query field '", name, "' must be an array of strings");
      }
      (name == "tags" ? req.tags : req.depends_on) = value.get<std::vector<std::string>>();
    } else {
      return arrow::Status::Invalid("unknown query field '", name, "'");
    }
  }
  return req;
}

}  // namespace quiver
