// Entries and publishes for the tests of indexes (index_test_util.h) and of what they keep
// (packed entries, the journal): entries as nodes write them, and publishes over the current
// version of a key.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "index/entry.h"
#include "index/index.h"

namespace quiver {

struct IndexTestEntries {
  /// \brief An entry as a node writes them: Quiver's own blob and manifest names, 16-hex
  /// checksums, a small table.
  static EntryMeta OwnNamesEntry(const std::string& key, uint64_t version, int64_t created_ms) {
    EntryMeta e;
    e.key = key;
    e.version = version;
    e.node = "vm:35245";  // sanitized in the names
    e.blob = NewDataBlobName(e.node);
    e.manifest = NewManifestName(e.key, e.version, e.node);
    e.bytes = 304;
    e.rows = 3;
    e.batches = 1;
    e.schema_fingerprint = "9a0c5e1d2b3f4a5b";
    e.checksum = "d2b1c0ffee123456";
    e.created_ms = created_ms;
    e.cost_ms = 1;
    return e;
  }

  static EntryMeta Entry(const std::string& key, uint64_t version, int64_t bytes = 100) {
    EntryMeta e;
    e.key = key;
    e.version = version;
    e.blob = "data/00/" + key + "-" + std::to_string(version) + "-" + std::to_string(bytes);
    e.manifest = "manifests/" + key + "/@v/" + std::to_string(version) + ".json";
    e.node = "test";
    e.bytes = bytes;
    e.rows = 10;
    e.batches = 1;
    e.schema_fingerprint = "00ff";
    e.checksum = "0123456789abcdef";
    e.created_ms = 1700000000000 + static_cast<int64_t>(version);
    e.cost_ms = 1000;
    return e;
  }

  // A query result of tenant `tenant` ("": shared by every tenant), its key made of `c`.
  static EntryMeta ResultEntry(char c, const std::string& tenant, uint64_t version,
                               int64_t bytes) {
    auto e = Entry(std::string(kQueryKeyPrefix) + std::string(64, c), version, bytes);
    e.source = "lite";
    e.query = R"({"scope":"tenant:)" + tenant + R"(","sql":"SELECT 1"})";
    e.tenant = tenant;
    return e;
  }

  /// Publish `entry` over whatever version of its key is current now.
  static arrow::Result<PublishOutcome> PublishNext(Index* index, EntryMeta entry,
                                                   PublishRequest request = {}) {
    ARROW_ASSIGN_OR_RAISE(auto latest, index->Get(entry.key, std::nullopt));
    request.expected_version = latest ? latest->version : 0;
    request.expected_blob = latest ? latest->blob : "";
    if (latest) {
      request.expected_depends_on = latest->depends_on;
      request.expected_tags = latest->tags;
    }
    entry.version = request.expected_version + 1;
    request.entry = std::move(entry);
    return index->Publish(request);
  }

  static PublishRequest Request(const EntryMeta& entry, const EntryMeta* previous = nullptr) {
    PublishRequest r;
    r.entry = entry;
    r.expected_version = previous ? previous->version : 0;
    r.expected_blob = previous ? previous->blob : "";
    if (previous) {
      r.expected_depends_on = previous->depends_on;
      r.expected_tags = previous->tags;
    }
    return r;
  }
};

}  // namespace quiver
