// Index: which versions of which keys exist, and where their bytes are.
//
// The index is the serving truth: a version is readable once Publish() returned OK for it
// and until it is removed. It holds metadata only, never Arrow data. It can always be
// rebuilt from the manifests in storage (cache/recovery).
//
// Implementations: EmbeddedIndex (in-process, the default). A Redis-compatible index for
// many nodes will implement the same interface and pass the same conformance suite.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

#include "index/entry.h"

namespace quiver {

struct IndexStats {
  int64_t keys = 0;
  int64_t versions = 0;
  int64_t bytes = 0;
};

class Index {
 public:
  virtual ~Index() = default;

  /// \brief Look up `version` of `key`, or its latest version when `version` is empty.
  /// A miss is std::nullopt, not an error.
  virtual arrow::Result<std::optional<EntryMeta>> Get(const std::string& key,
                                                      std::optional<uint64_t> version) = 0;

  /// \brief Return the latest version number of `key`, 0 if the key does not exist.
  virtual arrow::Result<uint64_t> LatestVersion(const std::string& key) = 0;

  /// \brief Publish `entry` as the new latest version of its key, if and only if the
  /// key's latest version is still `expected_latest` (0: the key must not exist) and
  /// entry.version == expected_latest + 1. Otherwise AlreadyExists("version conflict ...").
  virtual arrow::Status Publish(const EntryMeta& entry, uint64_t expected_latest) = 0;

  /// \brief Insert `entry` as found in storage, without the compare-and-set rule (used
  /// only when rebuilding the index at startup; versions may have gaps after trimming).
  virtual arrow::Status Restore(const EntryMeta& entry) = 0;

  /// \brief Remove every version of `key`; return what was removed (empty if none).
  virtual arrow::Result<std::vector<EntryMeta>> Remove(const std::string& key) = 0;

  /// \brief Remove all but the newest `keep` versions of `key`; return what was removed.
  virtual arrow::Result<std::vector<EntryMeta>> Trim(const std::string& key, int64_t keep) = 0;

  /// \brief Latest version of every key whose text starts with `prefix` (a plain string
  /// prefix; "" lists all), sorted by key.
  virtual arrow::Result<std::vector<EntryMeta>> ListLatest(const std::string& prefix) = 0;

  /// \brief Keys under the whole-segment prefix `prefix` (see KeyHasSegmentPrefix).
  virtual arrow::Result<std::vector<std::string>> KeysUnder(const std::string& prefix) = 0;

  /// \brief Keys whose latest version declares `key` in depends_on.
  virtual arrow::Result<std::vector<std::string>> Dependents(const std::string& key) = 0;
  /// \brief Keys whose latest version carries `tag`.
  virtual arrow::Result<std::vector<std::string>> KeysWithTag(const std::string& tag) = 0;

  virtual arrow::Result<IndexStats> Stats() = 0;
};

}  // namespace quiver
