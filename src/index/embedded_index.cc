#include "index/embedded_index.h"

#include <mutex>

#include "common/key.h"

namespace quiver {

arrow::Result<std::optional<EntryMeta>> EmbeddedIndex::Get(const std::string& key,
                                                           std::optional<uint64_t> version) {
  std::shared_lock lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  if (!version) return it->second.rbegin()->second;
  auto v = it->second.find(*version);
  if (v == it->second.end()) return std::nullopt;
  return v->second;
}

arrow::Result<uint64_t> EmbeddedIndex::LatestVersion(const std::string& key) {
  std::shared_lock lock(mutex_);
  auto it = entries_.find(key);
  return it == entries_.end() ? 0 : it->second.rbegin()->first;
}

arrow::Status EmbeddedIndex::Publish(const EntryMeta& entry, uint64_t expected_latest) {
  std::unique_lock lock(mutex_);
  auto& versions = entries_[entry.key];
  uint64_t latest = versions.empty() ? 0 : versions.rbegin()->first;
  if (latest != expected_latest || entry.version != expected_latest + 1) {
    if (versions.empty()) entries_.erase(entry.key);
    return arrow::Status::AlreadyExists("version conflict: key '", entry.key, "' is at version ",
                                        latest, ", expected ", expected_latest);
  }
  if (versions.empty()) ++stats_.keys;
  const EntryMeta& stored = versions.emplace(entry.version, entry).first->second;
  ++stats_.versions;
  stats_.bytes += entry.bytes;
  RelinkLocked(entry.key, &stored);
  return arrow::Status::OK();
}

void EmbeddedIndex::RelinkLocked(const std::string& key, const EntryMeta* latest) {
  auto unlink = [&](std::map<std::string, std::set<std::string>>& edges,
                    const std::vector<std::string>& from) {
    for (const auto& name : from) {
      auto it = edges.find(name);
      if (it == edges.end()) continue;
      it->second.erase(key);
      if (it->second.empty()) edges.erase(it);
    }
  };
  if (auto old = links_.find(key); old != links_.end()) {
    unlink(dependents_, old->second.first);
    unlink(tagged_, old->second.second);
    links_.erase(old);
  }
  if (!latest || (latest->depends_on.empty() && latest->tags.empty())) return;
  for (const auto& dep : latest->depends_on) dependents_[dep].insert(key);
  for (const auto& tag : latest->tags) tagged_[tag].insert(key);
  links_[key] = {latest->depends_on, latest->tags};
}

arrow::Result<std::vector<std::string>> EmbeddedIndex::Dependents(const std::string& key) {
  std::shared_lock lock(mutex_);
  auto it = dependents_.find(key);
  if (it == dependents_.end()) return std::vector<std::string>{};
  return std::vector<std::string>(it->second.begin(), it->second.end());
}

arrow::Result<std::vector<std::string>> EmbeddedIndex::KeysWithTag(const std::string& tag) {
  std::shared_lock lock(mutex_);
  auto it = tagged_.find(tag);
  if (it == tagged_.end()) return std::vector<std::string>{};
  return std::vector<std::string>(it->second.begin(), it->second.end());
}

arrow::Status EmbeddedIndex::Restore(const EntryMeta& entry) {
  std::unique_lock lock(mutex_);
  auto& versions = entries_[entry.key];
  if (versions.empty()) ++stats_.keys;
  auto [it, inserted] = versions.emplace(entry.version, entry);
  if (!inserted) {
    return arrow::Status::AlreadyExists("version ", entry.version, " of '", entry.key,
                                        "' is already in the index");
  }
  ++stats_.versions;
  stats_.bytes += entry.bytes;
  RelinkLocked(entry.key, &versions.rbegin()->second);
  return arrow::Status::OK();
}

arrow::Result<std::vector<EntryMeta>> EmbeddedIndex::Remove(const std::string& key) {
  std::unique_lock lock(mutex_);
  std::vector<EntryMeta> removed;
  auto it = entries_.find(key);
  if (it == entries_.end()) return removed;
  for (auto& [v, e] : it->second) {
    stats_.bytes -= e.bytes;
    --stats_.versions;
    removed.push_back(std::move(e));
  }
  --stats_.keys;
  entries_.erase(it);
  RelinkLocked(key, nullptr);
  return removed;
}

arrow::Result<std::vector<EntryMeta>> EmbeddedIndex::Trim(const std::string& key, int64_t keep) {
  std::unique_lock lock(mutex_);
  std::vector<EntryMeta> removed;
  auto it = entries_.find(key);
  if (it == entries_.end()) return removed;
  auto& versions = it->second;
  while (static_cast<int64_t>(versions.size()) > std::max<int64_t>(keep, 1)) {
    auto oldest = versions.begin();
    stats_.bytes -= oldest->second.bytes;
    --stats_.versions;
    removed.push_back(std::move(oldest->second));
    versions.erase(oldest);
  }
  return removed;
}

arrow::Result<std::vector<EntryMeta>> EmbeddedIndex::ListLatest(const std::string& prefix) {
  std::shared_lock lock(mutex_);
  std::vector<EntryMeta> out;
  for (auto it = entries_.lower_bound(prefix);
       it != entries_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    out.push_back(it->second.rbegin()->second);
  }
  return out;
}

arrow::Result<std::vector<std::string>> EmbeddedIndex::KeysUnder(const std::string& prefix) {
  std::shared_lock lock(mutex_);
  std::vector<std::string> out;
  for (auto it = entries_.lower_bound(prefix);
       it != entries_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (KeyHasSegmentPrefix(it->first, prefix)) out.push_back(it->first);
  }
  return out;
}

arrow::Result<IndexStats> EmbeddedIndex::Stats() {
  std::shared_lock lock(mutex_);
  return stats_;
}

}  // namespace quiver
