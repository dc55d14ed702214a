// DerivedCache: the data cache -- slices, projections, filters, sorts and other encodings of a
// cached object or query result, derived once and kept as entries of their own.
//
// A request names a source entry (an object key, optionally @version, or a query result's 64
// hex digits), a view (exec/table_view.h) and an encoding (format/table_encoding.h). Its
// derived key is "@q/" + SHA-256 of the source key, the source version and its creation time,
// the view's canonical JSON and the encoding -- so a new version of the source never finds
// the old derivation. A published, unexpired entry under that key is a hit, served from the
// store. Otherwise the source is decoded, the view applied, the result encoded and committed
// through the Committer like any fill:
//
//   - it depends on the source key: invalidating, replacing or refilling the source removes
//     it in the same cascade; its generation snapshot is taken before the source is read, so
//     a derivation from a source invalidated meanwhile is refused rather than published stale;
//   - it expires with the source (the source's expiry, if it has one);
//   - it is admitted through the cost-aware budget with cost = the time it took to derive;
//     making room for it never evicts its source (CommitRequest::keep), and evicting the
//     source evicts it (Evictor), since a view is only ever found through its source.
//
// An Arrow-stream view is stored as the view's IPC stream. Other encodings are stored as an
// IPC stream of one binary column `bytes`, each row a piece of the encoded file, in order
// (schema metadata quiver.encoding / quiver.content_type); ReadEncodedBytes() and
// ForEachEncodedChunk() give the bytes back. Derived entries share the query results' key
// space ("@q/", never listed as objects) and carry source "@derived" (IsDerivedEntry()).
// When the result cannot be stored (not admitted, the source changed meanwhile) it is served
// from memory, uncached. A plain read (empty view, Arrow stream) is not a derivation: callers
// serve the source entry as it is.
//
// Thread-safety: all methods are safe to call concurrently. Concurrent requests for one
// derived key may both derive; one publishes, the other serves what was published.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/buffer.h>
#include <arrow/result.h>

#include "cache/committer.h"
#include "cache/entry_store.h"
#include "cache/object_cache.h"
#include "common/clock.h"
#include "exec/table_view.h"
#include "format/table_encoding.h"

namespace quiver {

/// The `source` of every derived entry.
inline constexpr const char* kDerivedSource = "@derived";
/// \brief True if `meta` is a derived entry.
inline bool IsDerivedEntry(const EntryMeta& meta) { return meta.source == kDerivedSource; }

struct ViewRequest {
  /// An object key ("s/o"), or a query result's key: 64 hex digits (or "@q/" + them).
  std::string key;
  /// The source version (latest if empty).
  std::optional<uint64_t> version;
  ViewSpec view;
  Encoding encoding = Encoding::kArrowStream;
};

struct ViewResult {
  /// The derived entry; when not `stored`, an unpublished one read from memory.
  OpenEntry entry;
  /// false: `entry` is the view's IPC stream (send its payloads as they are); true: it holds
  /// the encoded bytes of `encoding` (ReadEncodedBytes / ForEachEncodedChunk).
  bool encoded = false;
  /// Found in the cache (else derived by this request).
  bool cached_hit = false;
  /// Milliseconds the derivation took (now, or when the entry was stored).
  int64_t derive_ms = 0;
  /// The source entry's metadata (its latest part for a patched object).
  EntryMeta source;
  // Beyond the plan's interface:
  Encoding encoding = Encoding::kArrowStream;
  /// Published in the cache (false: served uncached; `not_stored` says why).
  bool stored = true;
  std::string not_stored;
};

struct DerivedStats {
  int64_t hits = 0;        ///< served from a stored derived entry
  int64_t derived = 0;     ///< derivations run
  int64_t stored = 0;      ///< derivations published
  int64_t not_stored = 0;  ///< derivations served uncached (not admitted, source changed)
  int64_t failures = 0;    ///< derivations that failed (bad view, unreadable source, ...)
};

class DerivedCache {
 public:
  /// `max_entry_bytes`: the largest derived entry stored (a larger one fails the request).
  DerivedCache(EntryStore* entries, Committer* committer, ObjectCache* objects,
               std::shared_ptr<Clock> clock, int64_t max_entry_bytes)
      : entries_(entries),
        committer_(committer),
        objects_(objects),
        clock_(std::move(clock)),
        max_entry_bytes_(max_entry_bytes) {}

  /// \brief Serve a view of a cached entry. A missing source is KeyError; a bad key, view or
  /// a plain read (empty view, Arrow stream) is Invalid, naming the problem.
  arrow::Result<ViewResult> Serve(const ViewRequest& request);

  /// \brief Open the entry `key` (as ViewRequest::key) names, at `version`: its stored
  /// parts, oldest first (a patched object has several). For a plain read of a view ticket.
  arrow::Result<std::vector<OpenEntry>> OpenSourceParts(const std::string& key,
                                                        std::optional<uint64_t> version);

  DerivedStats Stats() const;

 private:
  struct Source;
  arrow::Result<Source> OpenSource(const ViewRequest& request);
  arrow::Result<ViewResult> Derive(const ViewRequest& request, const Source& source,
                                   const std::string& key, const std::string& canonical,
                                   const std::optional<EntryMeta>& stale, GenerationSnapshot since);
  /// The view was stored, but making room for it evicted its source: serve it from memory
  /// and remove it.
  arrow::Result<ViewResult> Unreachable(const ViewRequest& request, const Source& source,
                                        OpenEntry entry);
  arrow::Result<ViewResult> ServeUncached(const ViewRequest& request, const Source& source,
                                          std::string why);

  EntryStore* entries_;
  Committer* committer_;
  ObjectCache* objects_;
  std::shared_ptr<Clock> clock_;
  int64_t max_entry_bytes_;
  std::atomic<int64_t> hits_{0}, derived_{0}, stored_{0}, not_stored_{0}, failures_{0};
};

/// \brief The encoded bytes an encoded derived entry holds, in one buffer.
arrow::Result<std::shared_ptr<arrow::Buffer>> ReadEncodedBytes(const OpenEntry& entry);
/// \brief Call `fn` with each piece of the encoded bytes, in order, without copying them
/// (to stream a response); stops at the first error `fn` returns.
arrow::Status ForEachEncodedChunk(
    const OpenEntry& entry, const std::function<arrow::Status(std::shared_ptr<arrow::Buffer>)>& fn);

}  // namespace quiver
