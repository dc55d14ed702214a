#include "server/ticket.h"

#include <charconv>

#include <nlohmann/json.hpp>

namespace quiver {

arrow::Result<uint64_t> ParseVersion(const std::string& text, const char* what) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || v == 0) {
    return arrow::Status::Invalid(what, " '", text, "' is not a positive integer");
  }
  return v;
}

namespace {

arrow::Result<uint64_t> JsonVersion(const nlohmann::json& j, const char* field) {
  if (!j.is_number_unsigned() || j.get<uint64_t>() == 0) {
    return arrow::Status::Invalid("ticket field '", field, "' must be a positive integer, got ",
                                  j.dump());
  }
  return j.get<uint64_t>();
}

}  // namespace

arrow::Result<ObjectTicket> ObjectTicket::Parse(const std::string& ticket) {
  if (ticket.empty()) return arrow::Status::Invalid("empty ticket");
  if (ticket.front() != '{') {
    auto at = ticket.rfind('@');
    ARROW_ASSIGN_OR_RAISE(auto key, ObjectKey::Parse(ticket.substr(0, at)));
    ObjectTicket out{std::move(key), std::nullopt, std::nullopt, std::nullopt};
    if (at != std::string::npos) {
      ARROW_ASSIGN_OR_RAISE(out.version, ParseVersion(ticket.substr(at + 1), "ticket version"));
    }
    return out;
  }
  nlohmann::json j = nlohmann::json::parse(ticket, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return arrow::Status::Invalid("ticket is not a valid JSON object");
  }
  if (!j.contains("key") || !j["key"].is_string()) {
    return arrow::Status::Invalid("JSON ticket needs a string field 'key'");
  }
  ARROW_ASSIGN_OR_RAISE(auto key, ObjectKey::Parse(j["key"].get<std::string>()));
  ObjectTicket out{std::move(key), std::nullopt, std::nullopt, std::nullopt};
  for (auto& [name, value] : j.items()) {
    if (name == "key") continue;
    if (name == "version") {
      ARROW_ASSIGN_OR_RAISE(out.version, JsonVersion(value, "version"));
    } else if (name == "if_none_match") {
      ARROW_ASSIGN_OR_RAISE(out.if_none_match, JsonVersion(value, "if_none_match"));
    } else if (name == "since") {
      ARROW_ASSIGN_OR_RAISE(out.since, JsonVersion(value, "since"));
    } else {
      return arrow::Status::Invalid("unknown ticket field '", name, "'");
    }
  }
  return out;
}

}  // namespace quiver
