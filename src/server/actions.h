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

/// \brief Run action `type` with `body` for caller `who` (a tenant's keys, prefixes and tags
/// are mapped into its namespace; an action that needs a grant, e.g. `artifact-fetch`, is
/// refused without it); returns the result body. The role is the caller's to check
/// (ActionRole).
arrow::Result<std::string> RunAction(Engine* engine, const std::string& type,
                                     const std::string& body, const Identity& who);

}  // namespace quiver
