#include "index/entry.h"

#include <cctype>
#include <charconv>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/hex.h"

namespace quiver {

namespace {

// 1: manifests named by version only; 2: unique names, with "manifest" and "node".
constexpr int kEntryFormat = 2;
constexpr size_t kVersionDigits = 20;

}  // namespace

std::string EntryToJson(const EntryMeta& m) {
  nlohmann::json j = {{"format", kEntryFormat},
                      {"key", m.key},
                      {"version", m.version},
                      {"blob", m.blob},
                      {"bytes", m.bytes},
                      {"rows", m.rows},
                      {"batches", m.batches},
                      {"schema_fingerprint", m.schema_fingerprint},
                      {"checksum", m.checksum},
                      {"created_ms", m.created_ms},
                      {"cost_ms", m.cost_ms}};
  if (!m.manifest.empty()) j["manifest"] = m.manifest;
  if (!m.node.empty()) j["node"] = m.node;
  if (!m.key_id.empty()) j["key_id"] = m.key_id;
  if (!m.depends_on.empty()) j["depends_on"] = m.depends_on;
  if (!m.tags.empty()) j["tags"] = m.tags;
  if (m.is_patch()) j["base_version"] = m.base_version;
  if (m.is_query()) {
    j["source"] = m.source;
    j["query"] = m.query;
    j["expires_ms"] = m.expires_ms;
    if (!m.tenant.empty()) j["tenant"] = m.tenant;
  }
  return j.dump();
}

arrow::Result<EntryMeta> EntryFromJson(std::string_view json) {
  EntryMeta m;
  try {
    auto j = nlohmann::json::parse(json);
    const int format = j.at("format").get<int>();
    if (format != 1 && format != kEntryFormat) {
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
    m.manifest = j.value("manifest", std::string());
    m.node = j.value("node", std::string());
    m.key_id = j.value("key_id", std::string());
    if (j.contains("depends_on")) m.depends_on = j["depends_on"].get<std::vector<std::string>>();
    if (j.contains("tags")) m.tags = j["tags"].get<std::vector<std::string>>();
    m.base_version = j.value("base_version", uint64_t{0});
    if (m.base_version >= m.version && m.base_version != 0) {
      return arrow::Status::Invalid("malformed manifest: base_version ", m.base_version,
                                    " is not below version ", m.version);
    }
    if (j.contains("query")) {
      m.source = j.at("source").get<std::string>();
      m.query = j.at("query").get<std::string>();
      m.expires_ms = j.at("expires_ms").get<int64_t>();
      m.tenant = j.value("tenant", std::string());
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

std::string AsQueryKey(const std::string& key) {
  if (key.size() != 64) return key;
  std::string full = kQueryKeyPrefix + key;
  return IsQueryKey(full) ? full : key;
}

std::string KeyTenant(std::string_view key) {
  if (key.empty() || key.front() == '@') return "";
  const auto first = key.find('/');
  if (first == std::string_view::npos) return "";
  if (key.find('/', first + 1) == std::string_view::npos) return "";
  return std::string(key.substr(0, first));
}

std::string EntryTenant(const EntryMeta& entry) {
  return entry.is_query() ? entry.tenant : KeyTenant(entry.key);
}

std::string ManifestKeyPrefix(const std::string& key) {
  return fmt::format("{}{}/@v/", kManifestRoot, key);
}

std::string NewManifestName(const std::string& key, uint64_t version, const std::string& node) {
  // Zero-padded so that names sort by version.
  return fmt::format("{}{:020}-{}-{}.json", ManifestKeyPrefix(key), version,
                     SanitizeNodeId(node), RandomHex(8));
}

std::string NewDataBlobName(const std::string& node) {
  const std::string random = RandomHex(16);
  return fmt::format("{}{}/{}-{}.arrows", kDataRoot, random.substr(0, 2), SanitizeNodeId(node),
                     random);
}

std::optional<ManifestName> ParseManifestName(const std::string& name) {
  const std::string root = kManifestRoot;
  const std::string marker = "/@v/";
  if (name.compare(0, root.size(), root) != 0) return std::nullopt;
  size_t at = name.rfind(marker);
  if (at == std::string::npos || at <= root.size()) return std::nullopt;
  std::string_view file(name);
  file.remove_prefix(at + marker.size());
  if (file.size() < kVersionDigits + 5 || file.substr(file.size() - 5) != ".json") {
    return std::nullopt;
  }
  // <version>.json (format 1) or <version>-<node>-<random>.json.
  if (file.size() != kVersionDigits + 5 && file[kVersionDigits] != '-') return std::nullopt;
  ManifestName out;
  auto digits = file.substr(0, kVersionDigits);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out.version);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  out.key = name.substr(root.size(), at - root.size());
  return out;
}

arrow::Result<EntryMeta> ParseManifest(const std::string& name, const std::string& text) {
  ARROW_ASSIGN_OR_RAISE(auto meta, EntryFromJson(text));
  auto named = ParseManifestName(name);
  if (!named || named->key != meta.key || named->version != meta.version) {
    return arrow::Status::Invalid("manifest names key '", meta.key, "' version ", meta.version,
                                  " but is stored as ", name);
  }
  meta.manifest = name;
  return meta;
}

bool ClaimedBefore(const EntryMeta& a, const EntryMeta& b) {
  return std::tie(a.created_ms, a.manifest) < std::tie(b.created_ms, b.manifest);
}

std::string SanitizeNodeId(std::string_view id) {
  // Injective for ids that fit, so that two node ids never share blob-name prefixes: other
  // characters are written as %XX. A longer result keeps its start and ends in "%h" and a
  // 64-bit hash of the whole id, a form escaping never produces.
  constexpr size_t kMax = 64, kHashed = kMax - 18;
  std::string out;
  for (char c : id) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
                    c == '-';
    if (ok) {
      out += c;
    } else {
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    }
  }
  if (out.size() <= kMax) return out;
  uint64_t hash = 14695981039346656037ull;  // FNV-1a: the same on every node and build
  for (char c : id) hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  size_t cut = kHashed;
  while (cut > 0 && (out[cut - 1] == '%' || (cut > 1 && out[cut - 2] == '%'))) --cut;
  return fmt::format("{}%h{:016x}", out.substr(0, cut), hash);
}

}  // namespace quiver
