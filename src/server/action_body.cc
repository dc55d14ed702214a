#include "server/action_body.h"

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "common/key.h"
#include "index/entry.h"

namespace quiver {

using nlohmann::json;

namespace {

// A JSON object; an empty body is the empty object.
arrow::Result<json> ParseObject(const std::string& body) {
  if (body.empty()) return json::object();
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return arrow::Status::Invalid("action body must be a JSON object");
  }
  return j;
}

// {"field": "..."}, or the bare text.
arrow::Result<std::string> StringArgument(const std::string& body, const char* field) {
  if (!body.empty() && body.front() != '{') return body;
  ARROW_ASSIGN_OR_RAISE(auto j, ParseObject(body));
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) {
    return arrow::Status::Invalid("action body must be {\"", field, "\": \"...\"}");
  }
  return it->get<std::string>();
}

arrow::Result<bool> BoolField(const json& j, const char* field, bool fallback) {
  auto it = j.find(field);
  if (it == j.end()) return fallback;
  if (!it->is_boolean()) {
    return arrow::Status::Invalid("'", field, "' must be true or false, got ", it->dump());
  }
  return it->get<bool>();
}

arrow::Result<int64_t> SizeArgument(const json& v, const char* field) {
  auto size = ByteSizeFromJson(v);
  if (!size.ok()) return arrow::Status::Invalid("'", field, "': ", size.status().message());
  return size;
}

// Keys as users address them: object keys, or query results as "@q/<hex>".
arrow::Status CheckEntryKey(const std::string& key) {
  if (IsQueryKey(key)) return arrow::Status::OK();
  return ObjectKey::Parse(key).status();
}

// The JSON library reports some misuse by exceptions; none may escape a handler.
template <typename Parse>
auto Guarded(Parse&& parse) -> decltype(parse()) {
  try {
    return parse();
  } catch (const json::exception& e) {
    return arrow::Status::Invalid("action body: ", e.what());
  }
}

}  // namespace

arrow::Result<std::string> ParseKeyBody(const std::string& body) {
  return Guarded([&] { return StringArgument(body, "key"); });
}

arrow::Result<std::string> ParsePrefixBody(const std::string& body) {
  return Guarded([&] { return StringArgument(body, "prefix"); });
}

arrow::Result<std::string> ParseTagBody(const std::string& body) {
  ARROW_ASSIGN_OR_RAISE(auto tag, Guarded([&] { return StringArgument(body, "tag"); }));
  if (tag.empty()) return arrow::Status::Invalid("'tag' must not be empty");
  return tag;
}

arrow::Result<std::string> ParseEntriesBody(const std::string& body) {
  return Guarded([&]() -> arrow::Result<std::string> {
    ARROW_ASSIGN_OR_RAISE(auto j, ParseObject(body));
    auto it = j.find("prefix");
    if (it == j.end()) return std::string();
    if (!it->is_string()) {
      return arrow::Status::Invalid("'prefix' must be a string, got ", it->dump());
    }
    return it->get<std::string>();
  });
}

arrow::Result<ShrinkBody> ParseShrinkBody(const std::string& body) {
  return Guarded([&]() -> arrow::Result<ShrinkBody> {
    ARROW_ASSIGN_OR_RAISE(auto j, ParseObject(body));
    ShrinkBody out;
    ARROW_ASSIGN_OR_RAISE(bool one, BoolField(j, "one", false));
    ARROW_ASSIGN_OR_RAISE(out.dry_run, BoolField(j, "dry_run", false));
    if (auto it = j.find("below_bytes"); it != j.end()) {
      ARROW_ASSIGN_OR_RAISE(out.below_bytes, SizeArgument(*it, "below_bytes"));
    }
    if (one == out.below_bytes.has_value()) {
      return arrow::Status::Invalid(
          "shrink takes {\"one\": true} or {\"below_bytes\": N, \"dry_run\": bool}");
    }
    return out;
  });
}

arrow::Result<InvalidateBody> ParseInvalidateBody(const std::string& body) {
  return Guarded([&]() -> arrow::Result<InvalidateBody> {
    InvalidateBody out;
    ARROW_ASSIGN_OR_RAISE(out.key, StringArgument(body, "key"));
    ARROW_RETURN_NOT_OK(CheckEntryKey(out.key));
    if (!body.empty() && body.front() == '{') {
      ARROW_ASSIGN_OR_RAISE(auto j, ParseObject(body));
      ARROW_ASSIGN_OR_RAISE(out.cascade, BoolField(j, "cascade", true));
    }
    return out;
  });
}

arrow::Result<RuntimeSettings> ParseConfigSetBody(const std::string& body) {
  return Guarded([&]() -> arrow::Result<RuntimeSettings> {
    ARROW_ASSIGN_OR_RAISE(auto j, ParseObject(body));
    RuntimeSettings settings;
    for (auto& [name, value] : j.items()) {
      if (name == "half_life") {
        if (!value.is_number()) return arrow::Status::Invalid("'half_life' must be a number");
        settings.half_life = value.get<double>();
      } else if (name == "cache_size") {
        ARROW_ASSIGN_OR_RAISE(settings.cache_size, SizeArgument(value, "cache_size"));
      } else if (name == "memory_size") {
        ARROW_ASSIGN_OR_RAISE(settings.memory_size, SizeArgument(value, "memory_size"));
      } else {
        return arrow::Status::Invalid("config-set: unknown setting '", name,
                                      "' (settable: half_life, cache_size, memory_size)");
      }
    }
    ARROW_RETURN_NOT_OK(settings.Validate());
    return settings;
  });
}

arrow::Status ParseActionBody(const std::string& type, const std::string& body) {
  if (type == "delete") return ParseKeyBody(body).status();
  if (type == "delete-prefix") return ParsePrefixBody(body).status();
  if (type == "invalidate-tag") return ParseTagBody(body).status();
  if (type == "entries") return ParseEntriesBody(body).status();
  if (type == "shrink") return ParseShrinkBody(body).status();
  if (type == "invalidate") return ParseInvalidateBody(body).status();
  if (type == "config-set") return ParseConfigSetBody(body).status();
  return arrow::Status::OK();
}

}  // namespace quiver
