// VersionList: a key's versions as the embedded index keeps them -- the newest inline, the
// older ones (a key keeps more than one only with keep_versions > 1 or patches) in a vector
// allocated only when there are some. 16 bytes for a key with one version.
//
// Thread-safety: a value type.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "index/packed_entry.h"

namespace quiver {

class VersionList {
 public:
  bool empty() const { return latest_.empty(); }
  size_t size() const { return empty() ? 0 : 1 + (older_ ? older_->size() : 0); }
  /// REQUIRES: !empty().
  const PackedEntry& latest() const { return latest_; }
  /// \brief The entry of `version`, or null.
  const PackedEntry* Find(uint64_t version) const {
    if (empty()) return nullptr;
    if (latest_.version() == version) return &latest_;
    if (older_) {
      for (const auto& v : *older_) {
        if (v.version() == version) return &v;
      }
    }
    return nullptr;
  }
  /// \brief Add `entry` in version order; false (and nothing added) if its version is here.
  bool Add(PackedEntry entry) {
    if (empty()) {
      latest_ = std::move(entry);
      return true;
    }
    if (Find(entry.version()) != nullptr) return false;
    if (!older_) older_ = std::make_unique<std::vector<PackedEntry>>();
    if (entry.version() > latest_.version()) {
      older_->push_back(std::move(latest_));
      latest_ = std::move(entry);
      return true;
    }
    auto at = older_->begin();
    while (at != older_->end() && at->version() < entry.version()) ++at;
    older_->insert(at, std::move(entry));
    return true;
  }
  /// \brief Remove and return the oldest version. REQUIRES: !empty().
  PackedEntry PopOldest() {
    if (!older_ || older_->empty()) {
      older_.reset();
      return std::move(latest_);
    }
    PackedEntry oldest = std::move(older_->front());
    older_->erase(older_->begin());
    if (older_->empty()) older_.reset();
    return oldest;
  }
  /// \brief Call `f(const PackedEntry&)` for each version, oldest first.
  template <typename F>
  void ForEach(F&& f) const {
    if (older_) {
      for (const auto& v : *older_) f(v);
    }
    if (!empty()) f(latest_);
  }

 private:
  PackedEntry latest_;
  std::unique_ptr<std::vector<PackedEntry>> older_;  // by version, ascending
};

}  // namespace quiver
