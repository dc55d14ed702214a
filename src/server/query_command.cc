#include "server/query_command.h"

#include "server/artifact_request.h"
#include "server/query_request.h"

namespace quiver {

arrow::Result<QueryPlan> PlanCommand(Engine* engine, const std::string& text,
                                     const Identity& who) {
  if (LooksLikeArtifact(text)) {
    ARROW_ASSIGN_OR_RAISE(auto request, ParseArtifactRequest(text));
    return engine->artifacts()->Plan(request);
  }
  ARROW_ASSIGN_OR_RAISE(auto parsed, ParseQueryRequest(text));
  ARROW_RETURN_NOT_OK(RequireSource(who, parsed.source));
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
