// EmbeddedIndex: the in-process Index. An ordered map under a reader-writer lock.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <map>
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
  arrow::Result<IndexStats> Stats() override;

 private:
  mutable std::shared_mutex mutex_;
  // key -> version -> entry. Every inner map is non-empty.
  std::map<std::string, std::map<uint64_t, EntryMeta>> entries_;
  IndexStats stats_;
};

}  // namespace quiver
