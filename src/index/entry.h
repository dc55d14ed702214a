// Entry metadata: what the index knows about one stored version of one key, and its
// manifest -- the JSON document stored beside the data that lets the index be rebuilt from
// storage alone (layout in docs/design/storage.md).
//
// Every blob an entry writes has a name no other write ever uses: the writing node's id and a
// random part are in it. So a manifest or a data blob is never overwritten, and a writer that
// lost a race can never replace or delete the winner's files.
//
// Thread-safety: plain value types and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>

namespace quiver {

struct EntryMeta {
  std::string key;            ///< canonical key text, e.g. "session/object"
  uint64_t version = 0;       ///< 1, 2, 3, ... per key
  std::string blob;           ///< name of the IPC stream blob in the BlobStore
  std::string key_id;         ///< id of the key the store encrypted the blob with ("": none)
  std::string manifest;       ///< name of this version's manifest blob
  std::string node;           ///< id of the node that wrote it
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
  /// The tenant whose budget a query result (or a view) counts against: the tenant whose
  /// scope its query ran in. Empty for objects (their key names the tenant: KeyTenant) and
  /// for results every tenant shares.
  std::string tenant;
  std::vector<std::string> depends_on;  ///< keys this entry was computed from
  std::vector<std::string> tags;        ///< e.g. "table:events"
  /// Objects only: 0 for a version that holds the whole object; otherwise this version is a
  /// patch -- its blob holds only the rows it appends -- and the object at this version is
  /// versions base_version..version of the key, in order (docs/design/storage.md).
  uint64_t base_version = 0;

  bool is_query() const { return !query.empty(); }
  bool is_patch() const { return base_version != 0; }
  /// The first version this one needs to be read in full (itself if it is not a patch).
  uint64_t first_needed() const { return is_patch() ? base_version : version; }
  bool expired(int64_t now_ms) const { return expires_ms != 0 && now_ms >= expires_ms; }
};

/// Index keys of query results: "@q/" + 64 hex digits of the request's SHA-256. '@' never
/// occurs in object keys, so the two can never collide.
inline constexpr const char* kQueryKeyPrefix = "@q/";
/// \brief True if `key` is a well-formed query-result key.
bool IsQueryKey(const std::string& key);
/// \brief A query result named as users may name it -- its 64 hex digits, or "@q/" and
/// them -- as the index key ("@q/..."); any other text unchanged.
std::string AsQueryKey(const std::string& key);

/// \brief The tenant whose budget `key` counts against: the first segment of a
/// three-segment object key ("acme/s/o" -> "acme"; with authentication, a tenant's keys are
/// stored so); "" for two-segment keys and query results.
std::string KeyTenant(std::string_view key);
/// \brief The tenant whose budget `entry` counts against: its `tenant` if it is a query
/// result (or a view), else KeyTenant of its key; "" for none.
std::string EntryTenant(const EntryMeta& entry);

/// \brief Serialize an entry as JSON (a manifest, or an index record).
std::string EntryToJson(const EntryMeta& meta);
/// \brief Parse what EntryToJson wrote (or a format-1 manifest of earlier releases); the
/// error says which field is missing or malformed.
arrow::Result<EntryMeta> EntryFromJson(std::string_view json);

inline constexpr const char* kManifestRoot = "manifests/";
inline constexpr const char* kDataRoot = "data/";
inline constexpr const char* kQuarantineRoot = "quarantine/";

/// Blob-name prefix holding every manifest of `key`: manifests/<key>/@v/.
std::string ManifestKeyPrefix(const std::string& key);
/// \brief A new, never reused manifest name for (key, version), written by `node`:
/// manifests/<key>/@v/<20-digit version>-<node>-<16 hex>.json (sorts by version).
std::string NewManifestName(const std::string& key, uint64_t version, const std::string& node);
/// \brief A new, never reused data blob name written by `node`:
/// data/<2 hex>/<node>-<32 hex>.arrows (the first two hex digits shard the directory).
std::string NewDataBlobName(const std::string& node);

/// What a manifest's name says.
struct ManifestName {
  std::string key;
  uint64_t version = 0;
};
/// \brief Parse a manifest blob name (either layout); std::nullopt if it is not one.
std::optional<ManifestName> ParseManifestName(const std::string& name);
/// \brief The entry of manifest `name` from its text, with `manifest` set. Invalid if the
/// text is not an entry, or names another key or version than the manifest's name says.
arrow::Result<EntryMeta> ParseManifest(const std::string& name, const std::string& text);
/// \brief Of two manifests claiming one version (a writer that lost the race and crashed
/// before removing its own), the one that won: created first, then the lower name.
bool ClaimedBefore(const EntryMeta& a, const EntryMeta& b);

/// \brief `id` made safe for blob names: characters outside [A-Za-z0-9._-] become %XX (so two
/// ids never map to one name); a result longer than 64 characters is cut to its start plus
/// "%h" and a hash of the whole id. Empty stays empty.
std::string SanitizeNodeId(std::string_view id);

}  // namespace quiver
