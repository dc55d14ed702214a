// Flight actions: cache management over DoAction. Bodies and results are JSON, except
// `entries`, whose result is an Arrow IPC stream (one row per key). docs/management.md
// lists them.
#pragma once

#include <string>
#include <vector>

#include <arrow/flight/types.h>
#include <arrow/result.h>

#include "cache/engine.h"
#include "server/auth.h"
#include "server/tenant_scope.h"

namespace quiver {

/// \brief The actions ListActions advertises.
std::vector<arrow::flight::ActionType> ListedActions();

/// \brief The role a caller needs for action `type` (an unknown one: reader, and then it
/// fails as unknown).
Role ActionRole(const std::string& type);

/// \brief Run action `type` with `body` for a caller in `scope` (its keys, prefixes and
/// tags are mapped into its tenant's namespace); returns the result body.
arrow::Result<std::string> RunAction(Engine* engine, const std::string& type,
                                     const std::string& body, const TenantScope& scope);

}  // namespace quiver
