// EmbeddedIndex: the in-process Index. An ordered map under a reader-writer lock.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <map>
#include <set>
#include <shared_mutex>

#include "index/index.h"

namespace quiver {

class EmbeddedIndex final : public Index {
 public:
  arrow::Result<std::optional<EntryMeta>> Get(const std::string& key,
                                              std::optional<uint64_t> version) override;
  arrow::Result<uint64_t> LatestVersion(const std::string& key) override;
  arrow::Status Publish(const EntryMeta& entry, uint64_t expected_latest) override;
  arrow::Status Restore(const EntryMeta& entry) override;
  arrow::Result<std::vector<EntryMeta>> Remove(const std::string& key) override;
  arrow::Result<std::vector<EntryMeta>> Trim(const std::string& key, int64_t keep) override;
  arrow::Result<std::vector<EntryMeta>> ListLatest(const std::string& prefix) override;
  arrow::Result<std::vector<std::string>> KeysUnder(const std::string& prefix) override;
  arrow::Result<std::vector<std::string>> Dependents(const std::string& key) override;
  arrow::Result<std::vector<std::string>> KeysWithTag(const std::string& tag) override;
  arrow::Result<IndexStats> Stats() override;

 private:
  // Replace `key`'s dependency and tag edges with those of `latest` (nullptr: drop them).
  void RelinkLocked(const std::string& key, const EntryMeta* latest);

  mutable std::shared_mutex mutex_;
  // key -> version -> entry. Every inner map is non-empty.
  std::map<std::string, std::map<uint64_t, EntryMeta>> entries_;
  IndexStats stats_;
  std::map<std::string, std::set<std::string>> dependents_;  // dependency -> keys
  std::map<std::string, std::set<std::string>> tagged_;      // tag -> keys
  // key -> (its depends_on, its tags), to unlink exactly what was linked.
  std::map<std::string, std::pair<std::vector<std::string>, std::vector<std::string>>> links_;
};

}  // namespace quiver
