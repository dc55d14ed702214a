// Query results named by key ("@q/<hex>", or the 64 hex digits) and tenants. A result's key
// names no tenant, so a tenant token may name a result only if the result is its own -- its
// query ran in the tenant's scope ("tenant:NAME", docs/queries.md) -- or the result of a
// `shared_results` source the token is granted (re-checked on every call). Any other result
// answers as if it did not exist, so a tenant learns nothing of others' results.
#pragma once

#include <string>

#include <arrow/status.h>

#include "cache/engine.h"
#include "server/auth.h"
#include "server/tenant_scope.h"

namespace quiver {

/// \brief OK if `who` (in `scope`) may name the query result `key`; KeyError "no cached
/// result" if not. OK for callers not scoped to a tenant, for keys that are not query
/// results, and for results not stored (the call itself then reports them missing).
arrow::Status CheckResultAccess(Engine* engine, const Identity& who, const TenantScope& scope,
                                const std::string& key);

/// \brief As CheckResultAccess, for changing a result (invalidating it): only the tenant's
/// own results; a shared one is every tenant's, so it is not one tenant's to remove.
arrow::Status CheckOwnResult(Engine* engine, const TenantScope& scope, const std::string& key);

/// \brief As CheckResultAccess, for a put's depends_on: the result must also be stored (a
/// tenant cannot pre-register a dependency on a result that may turn out another tenant's;
/// missing and not-its-own read the same, KeyError "no cached result").
arrow::Status CheckResultDependency(Engine* engine, const Identity& who, const TenantScope& scope,
                                    const std::string& key);

}  // namespace quiver
