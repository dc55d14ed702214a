// Entry metadata: what the index knows about one stored version of one key, and its
// manifest -- the JSON document stored beside the data that lets the index be rebuilt
// from storage alone (layout in docs/design/storage.md).
//
// Thread-safety: plain value types.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <arrow/result.h>

namespace quiver {

struct EntryMeta {
  std::string key;            ///< canonical key text, e.g. "session/object"
  uint64_t version = 0;       ///< 1, 2, 3, ... per key
  std::string blob;           ///< name of the IPC stream blob in the BlobStore
  int64_t bytes = 0;          ///< size of the IPC stream
  int64_t rows = 0;
  int64_t batches = 0;
  std::string schema_fingerprint;  ///< XXH3 of the serialized schema, hex
  std::string checksum;            ///< XXH3-64 of the whole IPC stream, hex
  int64_t created_ms = 0;          ///< Unix epoch milliseconds
  // Query results only (empty / 0 for objects):
  std::string source;              ///< the source that produced it
  std::string query;               ///< the request as canonical JSON (source, sql, params)
  int64_t expires_ms = 0;          ///< 0: never expires
  int64_t cost_ms = 0;             ///< milliseconds it took to compute (or to receive)
  std::vector<std::string> depends_on;  ///< keys this entry was computed from
  std::vector<std::string> tags;        ///< e.g. "table:events"

  bool is_query() const { return !query.empty(); }
  bool expired(int64_t now_ms) const { return expires_ms != 0 && now_ms >= expires_ms; }
};

/// Index keys of query results: "@q/" + 64 hex digits of the request's SHA-256. '@' never
/// occurs in object keys, so the two can never collide.
inline constexpr const char* kQueryKeyPrefix = "@q/";
/// \brief True if `key` is a well-formed query-result key.
bool IsQueryKey(const std::string& key);

/// \brief Serialize a manifest (a JSON object with a format version).
std::string ManifestToJson(const EntryMeta& meta);
/// \brief Parse a manifest; the error says which field is missing or malformed.
arrow::Result<EntryMeta> ManifestFromJson(const std::string& json);

/// \brief Blob name of the manifest of (key, version): manifests/<key>/@v/<version>.json.
std::string ManifestBlobName(const std::string& key, uint64_t version);
/// Blob-name prefix holding every manifest of `key`.
std::string ManifestKeyPrefix(const std::string& key);
inline constexpr const char* kManifestRoot = "manifests/";
inline constexpr const char* kDataRoot = "data/";
inline constexpr const char* kQuarantineRoot = "quarantine/";

}  // namespace quiver
