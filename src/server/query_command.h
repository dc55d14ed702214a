// A query or artifact command (the JSON of a Flight CMD descriptor or ticket, or of an HTTP
// POST /v1/query), planned and executed by the engine front it names. Shared by the Flight
// and HTTP interfaces.
//
// Thread-safety: as the engine's fronts (safe to call concurrently).
#pragma once

#include <string>

#include <arrow/result.h>

#include "cache/engine.h"
#include "server/auth.h"
#include "server/tenant_scope.h"

namespace quiver {

/// The grant (a name in a token's `sources`) that fetching artifacts needs.
inline constexpr const char* kArtifactsGrant = "artifacts";

/// \brief Parse and plan `text` for `who`: an artifact request if it names an artifact, else
/// a query, refused (Flight UNAUTHORIZED) before anything runs if `who` is not granted its
/// source (kArtifactsGrant for an artifact). A tenant's command runs in its scope.
arrow::Result<QueryPlan> PlanCommand(Engine* engine, const std::string& text,
                                     const Identity& who);
/// \brief Parse the artifact request `text` of a caller in `scope`: a tenant's is cached in
/// its scope and counts against its budget. (The grant is the caller's to check.)
arrow::Result<ArtifactRequest> ParseScopedArtifactRequest(const std::string& text,
                                                          const TenantScope& scope);
/// \brief Serve a planned command: a hit, a new or joined fill, or a bypass.
arrow::Result<QueryResponse> ExecuteCommand(Engine* engine, const QueryPlan& plan);
/// \brief What the command asks for, in errors: "artifact" or "query".
const char* CommandName(const std::string& text);

}  // namespace quiver
