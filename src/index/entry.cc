#include "index/entry.h"

#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace quiver {

namespace {
constexpr int kManifestFormat = 1;
}

std::string ManifestToJson(const EntryMeta& m) {
  nlohmann::json j = {{"format", kManifestFormat},
                      {"key", m.key},
                      {"version", m.version},
                      {"blob", m.blob},
                      {"bytes", m.bytes},
                      {"rows", m.rows},
                      {"batches", m.batches},
                      {"schema_fingerprint", m.schema_fingerprint},
                      {"checksum", m.checksum},
                      {"created_ms", m.created_ms}};
  j["cost_ms"] = m.cost_ms;
  if (!m.depends_on.empty()) j["depends_on"] = m.depends_on;
  if (!m.tags.empty()) j["tags"] = m.tags;
  if (m.is_query()) {
    j["source"] = m.source;
    j["query"] = m.query;
    j["expires_ms"] = m.expires_ms;
  }
  return j.dump();
}

arrow::Result<EntryMeta> ManifestFromJson(const std::string& json) {
  EntryMeta m;
  try {
    auto j = nlohmann::json::parse(json);
    if (j.at("format").get<int>() != kManifestFormat) {
      return arrow::Status::Invalid("manifest format ", j.at("format").dump(),
                                    " is not supported");
    }
    m.key = j.at("key").get<std::string>();
    m.version = j.at("version").get<uint64_t>();
    m.blob = j.at("blob").get<std::string>();
    m.bytes = j.at("bytes").get<int64_t>();
    m.rows = j.at("rows").get<int64_t>();
    m.batches = j.at("batches").get<int64_t>();
    m.schema_fingerprint = j.at("schema_fingerprint").get<std::string>();
    m.checksum = j.at("checksum").get<std::string>();
    m.created_ms = j.at("created_ms").get<int64_t>();
    m.cost_ms = j.value("cost_ms", int64_t{0});
    if (j.contains("depends_on")) m.depends_on = j["depends_on"].get<std::vector<std::string>>();
    if (j.contains("tags")) m.tags = j["tags"].get<std::vector<std::string>>();
    if (j.contains("query")) {
      m.source = j.at("source").get<std::string>();
      m.query = j.at("query").get<std::string>();
      m.expires_ms = j.at("expires_ms").get<int64_t>();
    }
  } catch (const nlohmann::json::exception& e) {
    return arrow::Status::Invalid("malformed manifest: ", e.what());
  }
  return m;
}

bool IsQueryKey(const std::string& key) {
  const std::string prefix = kQueryKeyPrefix;
  if (key.size() != prefix.size() + 64 || key.compare(0, prefix.size(), prefix) != 0) {
    return false;
  }
  for (size_t i = prefix.size(); i < key.size(); ++i) {
    if (!std::isxdigit(static_cast<unsigned char>(key[i])) || std::isupper(key[i])) return false;
  }
  return true;
}

std::string ManifestKeyPrefix(const std::string& key) {
  return fmt::format("{}{}/@v/", kManifestRoot, key);
}

std::string ManifestBlobName(const std::string& key, uint64_t version) {
  // Zero-padded so that names sort by version.
  return fmt::format("{}{:020}.json", ManifestKeyPrefix(key), version);
}

}  // namespace quiver
