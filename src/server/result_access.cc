#include "server/result_access.h"

#include <nlohmann/json.hpp>

#include "cache/entry_store.h"
#include "index/entry.h"

namespace quiver {

namespace {

// The scope a result's query ran in ("" if its canonical request names none).
std::string QueryScope(const EntryMeta& meta) {
  auto j = nlohmann::json::parse(meta.query, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return "";
  auto it = j.find("scope");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// `who` null: the tenant's own results only. `must_exist`: a result not stored is refused
// too.
arrow::Status CheckAccess(Engine* engine, const Identity* who, const TenantScope& scope,
                          const std::string& key, bool must_exist = false) {
  if (!scope.scoped()) return arrow::Status::OK();
  const std::string full = AsQueryKey(key);
  if (!IsQueryKey(full)) return arrow::Status::OK();
  ARROW_ASSIGN_OR_RAISE(auto meta, engine->entries()->index()->Get(full, std::nullopt));
  if (!meta && !must_exist) return arrow::Status::OK();
  if (meta) {
    const std::string ran_in = QueryScope(*meta);
    if (ran_in == "tenant:" + scope.tenant()) return arrow::Status::OK();
    if (who && ran_in == "shared" && who->MayUseSource(meta->source)) return arrow::Status::OK();
  }
  return arrow::Status::KeyError("no cached result '", full.substr(3),
                                 "' (expired, invalidated, or never cached)");
}

}  // namespace

arrow::Status CheckResultAccess(Engine* engine, const Identity& who, const TenantScope& scope,
                                const std::string& key) {
  return CheckAccess(engine, &who, scope, key);
}

arrow::Status CheckOwnResult(Engine* engine, const TenantScope& scope, const std::string& key) {
  return CheckAccess(engine, nullptr, scope, key);
}

arrow::Status CheckResultDependency(Engine* engine, const Identity& who, const TenantScope& scope,
                                    const std::string& key) {
  return CheckAccess(engine, &who, scope, key, /*must_exist=*/true);
}

}  // namespace quiver
