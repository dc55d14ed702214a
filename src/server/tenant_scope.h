// TenantScope: how one caller's keys map to the keys the cache stores (docs/security.md,
// "Tenants").
//
// A caller whose token names a tenant and who is not an admin lives in that tenant's
// namespace: it addresses keys of two segments, SESSION/OBJECT, and the server stores them
// as TENANT/SESSION/OBJECT. The tenant comes from the credentials only, never from the
// request, so a tenant cannot name, list, delete, invalidate or depend on another tenant's
// entries. Its tags are stored as "TENANT:TAG", so invalidating a tag reaches only its own
// entries. Admins (and every caller when auth is off) are not scoped: they address the
// stored keys themselves and see every tenant's.
//
// Thread-safety: a value type.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>

#include "cache/object_cache.h"
#include "common/key.h"
#include "server/auth.h"

namespace quiver {

class TenantScope {
 public:
  static TenantScope Of(const Identity& who);
  /// Not scoped: keys pass unchanged.
  static TenantScope None() { return TenantScope(""); }

  bool scoped() const { return !tenant_.empty(); }
  const std::string& tenant() const { return tenant_; }

  /// \brief The stored key of the caller's `key` (Invalid unless it has 2 segments).
  arrow::Result<ObjectKey> Key(const ObjectKey& key) const;
  arrow::Result<ObjectKey> Key(std::string_view text) const;
  /// \brief The stored form of a whole-segment prefix, checked ("" is a tenant's whole
  /// namespace; unscoped callers must name one).
  arrow::Result<std::string> Prefix(const std::string& prefix) const;
  /// \brief The stored form of a listing's plain text prefix.
  std::string ListPrefix(const std::string& prefix) const;
  std::string Tag(const std::string& tag) const;
  /// \brief The caller's view of a stored key or tag (the tenant's own part removed).
  std::string ShowKey(const std::string& stored) const;
  std::string ShowTag(const std::string& stored) const;
  /// \brief Map a put's depends_on and tags into the namespace. A query result ("@q/...")
  /// it depends on stays as named, once `check_result` allows it (for a scoped caller:
  /// result_access.h, CheckResultDependency).
  arrow::Status MapPutOptions(
      PutOptions* options,
      const std::function<arrow::Status(const std::string& result_key)>& check_result) const;
  /// \brief For a scoped caller, Forbidden unless `segment` -- the first segment of a stored
  /// key the request names in full, as a Flame app -- is its tenant; `what` names the
  /// segment in the error ("Flame app").
  arrow::Status RequireOwnSegment(const std::string& segment, std::string_view what) const;

 private:
  explicit TenantScope(std::string tenant) : tenant_(std::move(tenant)) {}
  std::string tenant_;
};

}  // namespace quiver
