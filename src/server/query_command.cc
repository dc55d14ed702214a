#include "server/query_command.h"

#include "server/artifact_request.h"
#include "server/query_request.h"
#include "server/tenant_scope.h"

namespace quiver {

arrow::Result<ArtifactRequest> ParseScopedArtifactRequest(const std::string& text,
                                                          const TenantScope& scope) {
  ARROW_ASSIGN_OR_RAISE(auto request, ParseArtifactRequest(text));
  if (scope.scoped()) {
    request.scope = "tenant:" + scope.tenant();  // as a query's: one copy per tenant
    request.tenant = scope.tenant();
  }
  return request;
}

arrow::Result<QueryPlan> PlanCommand(Engine* engine, const std::string& text,
                                     const Identity& who) {
  const TenantScope scope = TenantScope::Of(who);
  if (LooksLikeArtifact(text)) {
    ARROW_RETURN_NOT_OK(RequireSource(who, kArtifactsGrant));
    ARROW_ASSIGN_OR_RAISE(auto request, ParseScopedArtifactRequest(text, scope));
    return engine->artifacts()->Plan(request);
  }
  ARROW_ASSIGN_OR_RAISE(auto parsed, ParseQueryRequest(text));
  ARROW_RETURN_NOT_OK(RequireSource(who, parsed.source));
  if (scope.scoped()) {
    // The key's scope slot: one result per tenant, or one for all on a shared source.
    const auto& sources = engine->queries()->sources();
    auto it = sources.find(parsed.source);
    const bool shared = it != sources.end() && it->second->spec().shared_results;
    parsed.scope = shared ? "shared" : "tenant:" + scope.tenant();
    if (!shared) parsed.tenant = scope.tenant();  // its result counts in the tenant's budget
  }
  return engine->queries()->Plan(std::move(parsed));
}

arrow::Result<QueryResponse> ExecuteCommand(Engine* engine, const QueryPlan& plan) {
  if (engine->artifacts()->Owns(plan)) return engine->artifacts()->Execute(plan);
  return engine->queries()->Execute(plan);
}

const char* CommandName(const std::string& text) {
  return LooksLikeArtifact(text) ? "artifact" : "query";
}

}  // namespace quiver
