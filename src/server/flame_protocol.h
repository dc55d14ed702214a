// Flame's object-cache wire protocol: recognising its requests, its keys, tickets, result
// metadata and response rows (docs/compat/flame.md). Pure functions; FlameAdapter
// (flame_adapter.h) uses them to serve Flame's SDK (flamepy) from the object cache.
//
// Keys: Flame names an object "app/session/object" (each part non-empty, without "..", "\"
// or "/"). A part made only of Quiver's key characters ([A-Za-z0-9._-], at most 128) is the
// same segment in Quiver; any other part is stored as ".." followed by the lower-case hex of
// its UTF-8 bytes. A Flame part never contains "..", so the two never collide and the
// mapping goes both ways.
//
// Thread-safety: pure functions and value types.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/flight/types.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "common/key.h"

namespace quiver::flame {

inline constexpr const char* kPatchPrefix = "PATCH:";
inline constexpr const char* kDeleteAction = "DELETE";
inline constexpr const char* kFormatKey = "flame.cache.format";
inline constexpr const char* kVersionKey = "flame.cache.version";
inline constexpr const char* kLogicalTypeKey = "flame.cache.logical_type";
inline constexpr const char* kArrowTableFormat = "arrow-table-v1";

/// A Flame key or key prefix: app/session/object, app/session, or app/* (all sessions).
struct FlameKey {
  std::string app, session;
  std::optional<std::string> object;

  bool all_sessions() const { return session == "*"; }
  /// "app/session/object", "app/session" or "app/*".
  std::string ToString() const;
};

/// \brief Parse a Flame key or prefix by Flame's rules; the error names the bad part.
arrow::Result<FlameKey> ParseFlameKey(std::string_view text);
/// \brief The Quiver key of a full Flame key (InvalidArgument for a prefix).
arrow::Result<ObjectKey> ToQuiverKey(const FlameKey& key);
/// \brief The Quiver segment of one Flame key part, and back.
arrow::Result<std::string> ToQuiverSegment(std::string_view part);
std::string FromQuiverSegment(const std::string& segment);
/// \brief The Flame key of a 3-segment Quiver key (std::nullopt for any other key).
std::optional<FlameKey> FromQuiverKey(const ObjectKey& key);

/// \brief A PATH descriptor of one element holding '/': Flame's "app/session[/object]".
bool IsFlamePath(const arrow::flight::FlightDescriptor& d);
/// \brief A CMD descriptor "PATCH:app/session/object".
bool IsFlamePatch(const arrow::flight::FlightDescriptor& d);
/// \brief A ticket "app/session/object:N" (Quiver tickets never hold ':').
bool IsFlameTicket(const std::string& ticket);

/// What a Flame DoGet ticket asks: the object, and the version the client has (0: none).
struct FlameTicket {
  FlameKey key;
  uint64_t client_version = 0;
};
arrow::Result<FlameTicket> ParseFlameTicket(const std::string& ticket);

/// \brief The PutResult metadata Flame sends: BSON {endpoint, key, version}.
std::string EncodeObjectRef(const std::string& endpoint, const std::string& key,
                            uint64_t version);

/// \brief True if `schema` marks a table stored natively (flame.cache.format).
bool IsNativeTable(const arrow::Schema& schema);
/// \brief True if `schema` is Flame's opaque object: version: uint64, data: binary.
bool IsOpaqueSchema(const arrow::Schema& schema);
/// \brief `schema` as a native table of version `version`: the format marker set,
/// flame.cache.version rewritten, flame.cache.logical_type kept ("pyarrow.table" if absent).
std::shared_ptr<arrow::Schema> AsNativeTable(const arrow::Schema& schema, uint64_t version);

/// The schema of Flame's object responses: version: uint64, kind: utf8, data: binary.
std::shared_ptr<arrow::Schema> ResponseSchema();

/// One response row: a base or a patch of an opaque object.
struct ResponseRow {
  uint64_t version = 0;
  bool base = false;
  std::shared_ptr<arrow::Buffer> data;
};
/// \brief The rows as one record batch of ResponseSchema().
arrow::Result<std::shared_ptr<arrow::RecordBatch>> ResponseBatch(
    const std::vector<ResponseRow>& rows);
/// \brief The bytes of an opaque object: its data column's values, concatenated.
arrow::Result<std::shared_ptr<arrow::Buffer>> OpaqueBytes(
    const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches);

/// \brief A new object id, as Flame makes one: a random (version 4) UUID.
std::string NewObjectId();

}  // namespace quiver::flame
