#include "server/tenant_scope.h"

#include <arrow/flight/types.h>

#include "index/entry.h"

namespace quiver {

namespace flight = arrow::flight;

namespace {

arrow::Status Forbidden(std::string message) {
  return flight::MakeFlightError(flight::FlightStatusCode::Unauthorized, std::move(message),
                                 R"({"error":"forbidden"})");
}

}  // namespace

TenantScope TenantScope::Of(const Identity& who) {
  if (who.Has(Role::kAdmin)) return None();
  return TenantScope(who.tenant);
}

arrow::Result<ObjectKey> TenantScope::Key(const ObjectKey& key) const {
  if (!scoped()) return key;
  if (key.segments().size() != 2) {
    return arrow::Status::Invalid("key '", key.ToString(), "': a tenant's keys have 2 segments, "
                                  "SESSION/OBJECT (the server puts the tenant in front)");
  }
  std::vector<std::string> segments = {tenant_};
  segments.insert(segments.end(), key.segments().begin(), key.segments().end());
  return ObjectKey::FromSegments(segments);
}

arrow::Result<ObjectKey> TenantScope::Key(std::string_view text) const {
  ARROW_ASSIGN_OR_RAISE(auto key, ObjectKey::Parse(text));
  return Key(key);
}

arrow::Result<std::string> TenantScope::Prefix(const std::string& prefix) const {
  if (!scoped()) return ParseKeyPrefix(prefix);
  if (prefix.empty()) return tenant_;
  ARROW_ASSIGN_OR_RAISE(auto canonical, ParseKeyPrefix(prefix));
  if (SplitKeyPath(canonical).size() > 1) {
    return arrow::Status::Invalid("prefix '", prefix, "': a tenant's keys have 2 segments, so "
                                  "a prefix is one segment (a session)");
  }
  return tenant_ + "/" + canonical;
}

std::string TenantScope::ListPrefix(const std::string& prefix) const {
  return scoped() ? tenant_ + "/" + prefix : prefix;
}

std::string TenantScope::Tag(const std::string& tag) const {
  return scoped() ? tenant_ + ":" + tag : tag;
}

std::string TenantScope::ShowKey(const std::string& stored) const {
  if (!scoped() || stored.size() <= tenant_.size() ||
      stored.compare(0, tenant_.size(), tenant_) != 0 || stored[tenant_.size()] != '/') {
    return stored;
  }
  return stored.substr(tenant_.size() + 1);
}

std::string TenantScope::ShowTag(const std::string& stored) const {
  if (!scoped() || stored.size() <= tenant_.size() ||
      stored.compare(0, tenant_.size(), tenant_) != 0 || stored[tenant_.size()] != ':') {
    return stored;
  }
  return stored.substr(tenant_.size() + 1);
}

arrow::Status TenantScope::MapPutOptions(
    PutOptions* options,
    const std::function<arrow::Status(const std::string& result_key)>& check_result) const {
  if (!scoped()) return arrow::Status::OK();
  for (auto& dep : options->depends_on) {
    if (IsQueryKey(dep)) {
      ARROW_RETURN_NOT_OK(check_result(dep));
      continue;
    }
    ARROW_ASSIGN_OR_RAISE(auto key, Key(dep));
    dep = key.ToString();
  }
  for (auto& tag : options->tags) tag = Tag(tag);
  return arrow::Status::OK();
}

arrow::Status TenantScope::RequireOwnSegment(const std::string& segment,
                                             std::string_view what) const {
  if (!scoped() || segment == tenant_) return arrow::Status::OK();
  return Forbidden(std::string(what) + " '" + segment + "' is outside the namespace of tenant '" +
                   tenant_ + "': a tenant's token may name only '" + tenant_ + "' there");
}

}  // namespace quiver
