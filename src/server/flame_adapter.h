// FlameAdapter: serves Flame's object-cache protocol (flame_protocol.h, docs/compat/flame.md)
// from Quiver's object cache, so that Flame's SDK (flamepy) works against Quiver unchanged.
// The Flight service hands it the requests flame_protocol recognises; it holds no state.
//
// Objects: a table whose schema carries flame.cache.format=arrow-table-v1 is stored as it
// is; an opaque object (rows of version: uint64, data: binary) likewise, and is sent back as
// version/kind/data rows, its base and each patch one row. A PATCH appends a version that
// holds only the delta (object_patch.h).
//
// Tenants (docs/security.md): a Flame key app/session/object is stored as the Quiver key of
// its parts, so a tenant's token may use Flame with its tenant as the app -- its keys
// acme/SESSION/OBJECT are then the tenant's own SESSION/OBJECT -- and no other app.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <memory>
#include <string>

#include <arrow/flight/server.h>

#include "cache/object_cache.h"
#include "server/flame_protocol.h"
#include "server/tenant_scope.h"

namespace quiver {

class FlameAdapter {
 public:
  FlameAdapter(ObjectCache* cache, arrow::flight::Location endpoint)
      : cache_(cache), endpoint_(std::move(endpoint)), endpoint_text_(endpoint_.ToString()) {}

  // Each request is of a caller in `scope`: a tenant's names its tenant as the app
  // (Forbidden otherwise, before anything is read or stored).

  /// \brief DoPut of a Flame path ("app/session" or "app/session/object") or PATCH command.
  arrow::Status Put(const arrow::flight::ServerCallContext& context,
                    arrow::flight::FlightMessageReader* reader,
                    arrow::flight::FlightMetadataWriter* writer, const TenantScope& scope);
  /// \brief DoGet of a ticket "app/session/object:N".
  arrow::Result<std::unique_ptr<arrow::flight::FlightDataStream>> Get(const std::string& ticket,
                                                                      const TenantScope& scope);
  /// \brief GetFlightInfo of a Flame path: where to read it (and its schema, if stored).
  arrow::Result<std::unique_ptr<arrow::flight::FlightInfo>> Info(
      const arrow::flight::FlightDescriptor& descriptor, const TenantScope& scope);
  /// \brief The DELETE action: a key, "app/session" or "app/*". Returns "OK".
  arrow::Result<std::string> Delete(const std::string& body, const TenantScope& scope);

 private:
  /// Store the batches `reader` sends under `key` (a patch if `patch`); version conflicts
  /// of a patch with a concurrent writer are retried with the buffered batches.
  arrow::Result<EntryMeta> Store(const ObjectKey& key, bool patch,
                                 arrow::flight::FlightMessageReader* reader);
  arrow::Result<std::unique_ptr<arrow::flight::FlightDataStream>> OpaqueRows(
      const ObjectRead& read);

  ObjectCache* cache_;
  arrow::flight::Location endpoint_;
  std::string endpoint_text_;
};

}  // namespace quiver
