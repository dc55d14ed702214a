#include "server/view_request.h"

#include <charconv>

#include <nlohmann/json.hpp>

namespace quiver {

namespace {

using nlohmann::json;

constexpr const char* kViewFields[] = {"columns", "filter", "sort", "offset", "limit", "format"};

arrow::Result<int64_t> Count(const json& v, const char* field) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0) {
    return arrow::Status::Invalid("view ticket field '", field,
                                  "' must be a non-negative integer, got ", v.dump());
  }
  return v.get<int64_t>();
}

arrow::Result<std::vector<std::string>> Strings(const json& v, const char* field) {
  if (!v.is_array()) {
    return arrow::Status::Invalid("view ticket field '", field, "' must be an array of strings");
  }
  std::vector<std::string> out;
  for (const auto& item : v) {
    if (!item.is_string() || item.get<std::string>().empty()) {
      return arrow::Status::Invalid("view ticket field '", field,
                                    "' must hold non-empty strings, got ", item.dump());
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

}  // namespace

bool LooksLikeView(const std::string& ticket) {
  if (ticket.empty() || ticket.front() != '{') return false;
  json j = json::parse(ticket, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("key")) return false;
  if (j.contains("sql") || j.contains("source") || j.contains("artifact")) return false;
  for (const char* field : kViewFields) {
    if (j.contains(field)) return true;
  }
  return false;
}

arrow::Result<ViewRequest> ParseViewRequest(const std::string& ticket) {
  json j = json::parse(ticket, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return arrow::Status::Invalid("a view ticket must be a JSON object like "
                                  "{\"key\": \"s/o\", \"columns\": [\"a\"], \"limit\": 10}");
  }
  if (!j.contains("key") || !j["key"].is_string()) {
    return arrow::Status::Invalid("view ticket needs a string field 'key'");
  }
  ViewRequest request;
  for (auto& [name, value] : j.items()) {
    if (name == "key") {
      request.key = value.get<std::string>();
    } else if (name == "version") {
      if (!value.is_number_unsigned() || value.get<uint64_t>() == 0) {
        return arrow::Status::Invalid("view ticket field 'version' must be a positive integer, "
                                      "got ", value.dump());
      }
      request.version = value.get<uint64_t>();
    } else if (name == "columns") {
      ARROW_ASSIGN_OR_RAISE(request.view.columns, Strings(value, "columns"));
    } else if (name == "filter") {
      if (!value.is_string()) {
        return arrow::Status::Invalid("view ticket field 'filter' must be a string, got ",
                                      value.dump());
      }
      request.view.filter = value.get<std::string>();
    } else if (name == "sort") {
      ARROW_ASSIGN_OR_RAISE(auto keys, Strings(value, "sort"));
      for (const auto& key : keys) {
        ARROW_ASSIGN_OR_RAISE(auto parsed, ParseSortKey(key));
        request.view.sort.push_back(std::move(parsed));
      }
    } else if (name == "offset") {
      ARROW_ASSIGN_OR_RAISE(request.view.offset, Count(value, "offset"));
    } else if (name == "limit") {
      ARROW_ASSIGN_OR_RAISE(request.view.limit, Count(value, "limit"));
    } else if (name == "format") {
      if (!value.is_string()) {
        return arrow::Status::Invalid("view ticket field 'format' must be a string, got ",
                                      value.dump());
      }
      ARROW_ASSIGN_OR_RAISE(request.encoding, EncodingFromName(value.get<std::string>()));
    } else {
      return arrow::Status::Invalid("unknown view ticket field '", name,
                                    "' (fields: key, version, columns, filter, sort, offset, "
                                    "limit, format)");
    }
  }
  return request;
}

namespace {

arrow::Result<int64_t> CountParam(const std::string& text, const char* name) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || v < 0) {
    return arrow::Status::Invalid("parameter '", name, "' must be a non-negative integer, got '",
                                  text, "'");
  }
  return v;
}

// "a,b" -> {"a", "b"}; an empty part is an error naming the parameter.
arrow::Result<std::vector<std::string>> ListParam(const std::string& text, const char* name) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    std::string part = text.substr(start, comma == std::string::npos ? comma : comma - start);
    if (part.empty()) {
      return arrow::Status::Invalid("parameter '", name, "' has an empty item: '", text, "'");
    }
    out.push_back(std::move(part));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

arrow::Result<ViewRequest> ParseViewParams(const std::string& key,
                                           const std::multimap<std::string, std::string>& params,
                                           const std::set<std::string>& also_allowed) {
  ViewRequest request;
  request.key = key;
  std::set<std::string> seen;
  for (const auto& [name, value] : params) {
    const bool repeatable = name == "columns" || name == "sort";
    if (!repeatable && !also_allowed.count(name) && !seen.insert(name).second) {
      return arrow::Status::Invalid("parameter '", name, "' is given twice");
    }
    if (name == "version") {
      int64_t v = 0;
      ARROW_ASSIGN_OR_RAISE(v, CountParam(value, "version"));
      if (v == 0) return arrow::Status::Invalid("parameter 'version' must be positive");
      request.version = static_cast<uint64_t>(v);
    } else if (name == "columns") {
      ARROW_ASSIGN_OR_RAISE(auto columns, ListParam(value, "columns"));
      request.view.columns.insert(request.view.columns.end(), columns.begin(), columns.end());
    } else if (name == "filter") {
      request.view.filter = value;
    } else if (name == "sort") {
      ARROW_ASSIGN_OR_RAISE(auto keys, ListParam(value, "sort"));
      for (const auto& k : keys) {
        ARROW_ASSIGN_OR_RAISE(auto parsed, ParseSortKey(k));
        request.view.sort.push_back(std::move(parsed));
      }
    } else if (name == "offset") {
      ARROW_ASSIGN_OR_RAISE(request.view.offset, CountParam(value, "offset"));
    } else if (name == "limit") {
      ARROW_ASSIGN_OR_RAISE(request.view.limit, CountParam(value, "limit"));
    } else if (name == "format") {
      ARROW_ASSIGN_OR_RAISE(request.encoding, EncodingFromName(value));
    } else if (!also_allowed.count(name)) {
      return arrow::Status::Invalid("unknown parameter '", name,
                                    "' (parameters: version, columns, filter, sort, offset, "
                                    "limit, format)");
    }
  }
  return request;
}

std::string ViewResultJson(const ViewResult& r) {
  const auto& s = r.source;
  json source = {{"key", IsQueryKey(s.key) ? s.key.substr(3) : s.key},
                 {"version", s.version},
                 {"created_ms", s.created_ms}};
  if (s.expires_ms) source["expires_ms"] = s.expires_ms;
  json j = {{"view", true},
            {"cache", r.cached_hit ? "hit" : "miss"},
            {"stored", r.stored},
            {"source", source},
            {"format", std::string(EncodingName(r.encoding))},
            {"content_type", std::string(ContentType(r.encoding))},
            {"encoded", r.encoded},
            {"derive_ms", r.derive_ms},
            {"rows", r.entry.meta.rows},
            {"bytes", r.entry.meta.bytes}};
  if (r.stored) {
    j["key"] = r.entry.meta.key.substr(3);
  } else {
    j["reason"] = r.not_stored;
  }
  return j.dump();
}

}  // namespace quiver
