#include "server/artifact_request.h"

#include <nlohmann/json.hpp>

namespace quiver {

using nlohmann::json;

bool LooksLikeArtifact(const std::string& text) {
  if (text.empty() || text.front() != '{') return false;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  return !j.is_discarded() && j.is_object() && j.contains("artifact");
}

arrow::Result<ArtifactRequest> ParseArtifactRequest(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return arrow::Status::Invalid("an artifact request must be a JSON object like "
                                  "{\"artifact\": \"s3://bucket/data.parquet\"}");
  }
  ArtifactRequest request;
  if (!j.contains("artifact") || !j["artifact"].is_string() ||
      j["artifact"].get<std::string>().empty()) {
    return arrow::Status::Invalid("artifact field 'artifact' is required and must be a URL string");
  }
  request.url = j["artifact"].get<std::string>();
  for (auto& [name, value] : j.items()) {
    if (name == "artifact") continue;
    if (name == "format") {
      if (!value.is_string()) {
        return arrow::Status::Invalid("artifact field 'format' must be a string");
      }
      request.format = value.get<std::string>();
    } else if (name == "ttl_s") {
      if (!value.is_number()) {
        return arrow::Status::Invalid("artifact field 'ttl_s' must be a number");
      }
      request.ttl_s = value.get<double>();
    } else {
      return arrow::Status::Invalid("unknown artifact field '", name,
                                    "' (known: artifact, format, ttl_s)");
    }
  }
  return request;
}

std::string ArtifactFetchedJson(const ArtifactFetched& f) {
  json j = {{"key", f.key},         {"cache", f.cache},     {"url", f.url},
            {"format", f.format},   {"rows", f.rows},       {"bytes", f.bytes},
            {"created_ms", f.created_ms}, {"expires_ms", f.expires_ms}, {"size", f.size},
            {"mtime_ms", f.mtime_ms}};
  if (!f.etag.empty()) j["etag"] = f.etag;
  return j.dump();
}

}  // namespace quiver
