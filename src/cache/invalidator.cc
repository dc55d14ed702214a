#include "cache/invalidator.h"

#include <algorithm>
#include <set>

#include <spdlog/spdlog.h>

namespace quiver {

arrow::Result<std::vector<std::string>> Invalidator::Cascade(std::vector<std::string> keys,
                                                             std::vector<std::string> tags,
                                                             bool cascade) {
  Index* index = entries_->index();
  std::set<std::string> seen(keys.begin(), keys.end());
  std::vector<std::string> removed;
  // A tag's keys are removed whether or not the removal cascades further.
  bool collect_next = cascade || !tags.empty();
  while (!keys.empty() || !tags.empty()) {
    ARROW_ASSIGN_OR_RAISE(auto collected, index->BumpAndCollect(keys, tags));
    for (const auto& key : keys) {
      // Already bumped by BumpAndCollect: a fill computed after that is fresh, and may publish.
      ARROW_ASSIGN_OR_RAISE(auto gone, entries_->Remove(RemoveRequest(key)));
      if (!gone.empty()) removed.push_back(key);
    }
    std::vector<std::string> next;
    if (collect_next) {
      for (auto& key : collected) {
        if (seen.insert(key).second) next.push_back(std::move(key));
      }
    }
    keys = std::move(next);
    tags.clear();
    collect_next = cascade;
  }
  invalidations_ += static_cast<int64_t>(removed.size());
  std::sort(removed.begin(), removed.end());
  return removed;
}

arrow::Result<std::vector<std::string>> Invalidator::Invalidate(const std::string& key,
                                                                bool cascade) {
  ARROW_ASSIGN_OR_RAISE(auto removed, Cascade({key}, {}, cascade));
  spdlog::info("invalidate {}{}: removed {} keys", key, cascade ? "" : " (no cascade)",
               removed.size());
  return removed;
}

arrow::Result<std::vector<std::string>> Invalidator::InvalidateTag(const std::string& tag) {
  ARROW_ASSIGN_OR_RAISE(auto removed, Cascade({}, {tag}, true));
  spdlog::info("invalidate tag {}: removed {} keys", tag, removed.size());
  return removed;
}

arrow::Status Invalidator::NewVersionComing(const std::string& key) {
  // Bumping the key refuses fills computed from its previous version; its dependents go.
  ARROW_ASSIGN_OR_RAISE(auto dependents, entries_->index()->BumpAndCollect({key}, {}));
  return RemoveDependents(key, std::move(dependents), "refilling");
}

arrow::Status Invalidator::InvalidateDependents(const std::string& key, const char* why) {
  // The publish bumped the key: what depends on it was either published before (and is
  // found here) or is refused.
  ARROW_ASSIGN_OR_RAISE(auto dependents, entries_->index()->Dependents(key));
  return RemoveDependents(key, std::move(dependents), why);
}

arrow::Status Invalidator::RemoveDependents(const std::string& key,
                                            std::vector<std::string> dependents,
                                            const char* why) {
  if (dependents.empty()) return arrow::Status::OK();
  ARROW_ASSIGN_OR_RAISE(auto removed, Cascade(std::move(dependents), {}, true));
  spdlog::info("{} {} invalidated {} dependent entries", why, key, removed.size());
  return arrow::Status::OK();
}

}  // namespace quiver
