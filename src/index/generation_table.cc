#include "index/generation_table.h"

namespace quiver {

void GenerationTable::Bump(const std::string& name) {
  const uint64_t generation = ++counter_;
  auto [it, inserted] = by_name_.try_emplace(name, generation);
  if (!inserted) {
    by_generation_.erase(it->second);
    it->second = generation;
  }
  by_generation_.emplace(generation, name);
  while (by_name_.size() > max_names_) {
    auto oldest = by_generation_.begin();
    forgotten_ = oldest->first;
    by_name_.erase(oldest->second);
    by_generation_.erase(oldest);
  }
}

void GenerationTable::ForgetAll() {
  forgotten_ = ++counter_;
  by_name_.clear();
  by_generation_.clear();
}

std::optional<std::string> GenerationTable::ChangedSince(const std::vector<std::string>& names,
                                                         uint64_t since) const {
  if (names.empty()) return std::nullopt;  // nothing to be stale about
  if (since < forgotten_) return std::string();
  for (const auto& name : names) {
    auto it = by_name_.find(name);
    if (it != by_name_.end() && it->second > since) return name;
  }
  return std::nullopt;
}

}  // namespace quiver
