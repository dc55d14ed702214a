// Index: everything the nodes of one cache share -- which versions of which keys exist and
// where their bytes are, the compare-and-set publish, generations, dependencies and tags,
// TTLs, eviction scores and totals, run-time settings, and leases.
//
// The index is the serving truth: a version is readable once Publish() accepted it and until
// it is removed. It holds metadata only, never Arrow data, and can always be rebuilt from the
// manifests in storage (cache/index_rebuilder).
//
// Publication is the one moment data becomes visible, and it is checked in one atomic step:
// the key's latest version is still the one the writer read (compare-and-set), no key or tag
// the entry was computed from was invalidated since the writer's generation snapshot, the
// writer still holds its fill lease (fencing token), and the budget has room. Anything else
// the engine keeps in process -- maps of running fills, local locks, memory copies -- is an
// optimisation in front of the index, never what correctness rests on.
//
// Generations. The index keeps one counter. Bumping a name ("k:<key>" or "t:<tag>") sets the
// name's generation to the next counter value; a snapshot is the counter's value; a name
// changed since a snapshot iff its generation is greater. The index may forget old
// generations to stay bounded; it then refuses snapshots older than what it forgot
// (kStaleGeneration), never accepts a stale one.
//
// Implementations: EmbeddedIndex (in-process, the default) and RedisIndex (Redis, Valkey or
// Dragonfly, shared by many nodes). Both pass the conformance suite in index_test_util.h.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <arrow/result.h>
#include <arrow/status.h>

#include "index/entry.h"

namespace quiver {

struct IndexStats {
  int64_t keys = 0;
  int64_t versions = 0;
  int64_t bytes = 0;  ///< all kept versions of all keys
};

/// How reads and accesses turn into eviction scores (policy/eviction_policy.h).
struct ScoringPolicy {
  std::string name = "cost";  ///< "cost" or "lru"
  double half_life = 1000;
};

/// What the index knows about one key's use, for eviction and the entries listing.
struct KeyUsage {
  int64_t bytes = 0;  ///< all kept versions
  double cost_s = 0;
  uint64_t accesses = 0;
  int64_t created_ms = 0;  ///< of the latest version
  int64_t last_access_ms = 0;
  double score = 0;
};

/// A key's latest version and its use.
struct IndexedKey {
  EntryMeta latest;
  KeyUsage usage;
};

/// The generation counter when a put or fill started.
struct GenerationSnapshot {
  uint64_t counter = 0;
};

/// Generation names: a key's, and a tag's.
inline std::string KeyGeneration(const std::string& key) { return "k:" + key; }
inline std::string TagGeneration(const std::string& tag) { return "t:" + tag; }

/// A held lease: its name and fencing token.
struct LeaseRef {
  std::string name;
  uint64_t token = 0;
};

/// Who holds a lease.
struct LeaseHolder {
  std::string owner;     ///< node id
  std::string endpoint;  ///< where the owner serves other nodes, e.g. grpc://10.0.0.5:8815
  uint64_t token = 0;
  int64_t ttl_ms = 0;    ///< left before it expires unless renewed
};

struct LeaseGrant {
  bool acquired = false;
  uint64_t token = 0;  ///< when acquired
  LeaseHolder holder;  ///< when not: who has it
};

/// Budget limits a publish must respect.
struct BudgetLimits {
  int64_t cache_size = 0;   ///< bytes
  int64_t max_entries = 0;  ///< keys; 0: unlimited
  /// Accept even if this entry takes the total past the limits, as long as they were not
  /// already exceeded (a writer that lost every race for room; at most one entry over).
  bool allow_one_over = false;
};

struct PublishRequest {
  /// The new version; entry.version must be expected_version + 1.
  EntryMeta entry;
  /// The latest version the writer read, and its data blob (0 and "" if the key was absent).
  /// The blob tells a key deleted and recreated at the same version number apart.
  uint64_t expected_version = 0;
  std::string expected_blob;
  /// That version's depends_on and tags, as read with it: an index that keeps the links of
  /// the latest version apart (Redis) moves them without reading the entry again. The
  /// compare-and-set on the blob, a name never reused, guarantees they are current.
  std::vector<std::string> expected_depends_on;
  std::vector<std::string> expected_tags;
  /// Versions of the key kept readable after this one is published (>= 1).
  int64_t keep_versions = 1;
  /// Bump the key's own generation: what was computed from its previous version is stale.
  bool bump_key = false;
  /// Generation names the entry was computed from; refused if any changed after `since`.
  std::vector<std::string> watched;
  GenerationSnapshot since;
  /// The fill lease that must still hold this token; released when the entry is published.
  std::optional<LeaseRef> lease;
  std::optional<BudgetLimits> budget;
  /// The limits of the entry's tenant (EntryTenant), checked the same way against the
  /// tenant's totals (TenantStats).
  std::optional<BudgetLimits> tenant_budget;
  ScoringPolicy scoring;
};

enum class Refusal {
  kNone,
  kVersionConflict,  ///< the key's latest version is not the expected one
  kStaleGeneration,  ///< a watched name changed (or the snapshot is older than the index keeps)
  kLeaseLost,        ///< the lease expired or another node holds it (fenced)
  kOverBudget,       ///< no room; evict and retry
};

struct PublishOutcome {
  Refusal refusal = Refusal::kNone;
  /// kVersionConflict: the current version; kStaleGeneration: the changed name (without its
  /// "k:"/"t:"); kLeaseLost: who holds the lease now; kOverBudget: the totals (the tenant's,
  /// prefixed "tenant 'NAME': ", when its budget refused).
  std::string detail;
  uint64_t current_version = 0;
  /// Published: the versions that fell out of keep_versions.
  std::vector<EntryMeta> trimmed;

  bool published() const { return refusal == Refusal::kNone; }
};

struct RemoveRequest {
  explicit RemoveRequest(std::string key, bool bump_key = false)
      : key(std::move(key)), bump_key(bump_key) {}

  std::string key;
  /// Bump the key's generation (delete, invalidate): fills and puts computed from it before
  /// now will not publish.
  bool bump_key = false;
  /// Remove only if the latest version has expired by this time (reclaiming TTLs).
  std::optional<int64_t> only_if_expired_at;
  /// Remove only if the latest version is still this data blob (eviction of what was chosen).
  std::optional<std::string> only_if_blob;
};

/// An event other nodes should hear of, so that their node-local copies stay coherent.
struct IndexEvent {
  enum class Kind {
    kRemoved,     ///< `blobs` of `key` are gone (delete, eviction, invalidation, trim, expiry)
    kFillEnded,   ///< the fill of query key `key` ended (published or failed)
    kSettings,    ///< run-time settings changed
  };
  Kind kind = Kind::kRemoved;
  std::string node;  ///< who announced it
  std::string key;
  std::vector<std::string> blobs;
};

/// The state of the index's connection, for logs and stats.
struct IndexHealth {
  bool available = true;
  std::string state = "ok";  ///< "ok", "unavailable", "rebuilding"
  std::string detail;
};

class Index {
 public:
  virtual ~Index() = default;

  // --- entries ---------------------------------------------------------------------------

  /// \brief `version` of `key`, or its latest version when `version` is empty. A miss is
  /// std::nullopt, not an error.
  virtual arrow::Result<std::optional<EntryMeta>> Get(const std::string& key,
                                                      std::optional<uint64_t> version) = 0;
  /// \brief Several lookups in one round trip; results in the order asked.
  virtual arrow::Result<std::vector<std::optional<EntryMeta>>> GetMany(
      const std::vector<std::pair<std::string, uint64_t>>& versions) = 0;
  /// \brief Publish a new version, atomically checked (see PublishRequest). A refusal is an
  /// outcome, not an error; errors are for an index that cannot be reached.
  virtual arrow::Result<PublishOutcome> Publish(const PublishRequest& request) = 0;
  /// \brief Remove every version of a key (if the request's conditions hold); returns what
  /// was removed, oldest first (empty: nothing was).
  virtual arrow::Result<std::vector<EntryMeta>> Remove(const RemoveRequest& request) = 0;
  /// \brief Remove all but the newest `keep` versions of `key`; returns what was removed.
  virtual arrow::Result<std::vector<EntryMeta>> Trim(const std::string& key, int64_t keep) = 0;
  /// \brief The latest version of every key whose text starts with `prefix` (plain string
  /// prefix; "" lists all), sorted by key, with each key's use.
  virtual arrow::Result<std::vector<IndexedKey>> ListLatest(const std::string& prefix) = 0;
  /// \brief Keys under the whole-segment prefix `prefix` (see KeyHasSegmentPrefix).
  virtual arrow::Result<std::vector<std::string>> KeysUnder(const std::string& prefix) = 0;
  virtual arrow::Result<IndexStats> Stats() = 0;
  /// \brief The totals of one tenant's entries (EntryTenant): keys and bytes of every kept
  /// version; `versions` is not counted per tenant (0).
  virtual arrow::Result<IndexStats> TenantStats(const std::string& tenant) = 0;

  // --- generations, dependencies, tags ---------------------------------------------------

  /// \brief The generation counter now: a snapshot for a put or fill about to start.
  virtual arrow::Result<GenerationSnapshot> Snapshot() = 0;
  /// \brief Bump the generations of `keys` and `tags`, then return the keys whose latest
  /// version depends on one of `keys` or carries one of `tags` -- in one atomic step, so
  /// that an entry published concurrently is either refused or returned.
  virtual arrow::Result<std::vector<std::string>> BumpAndCollect(
      const std::vector<std::string>& keys, const std::vector<std::string>& tags) = 0;
  /// \brief Keys whose latest version declares `key` in depends_on.
  virtual arrow::Result<std::vector<std::string>> Dependents(const std::string& key) = 0;
  /// \brief Keys whose latest version carries `tag`.
  virtual arrow::Result<std::vector<std::string>> KeysWithTag(const std::string& tag) = 0;

  // --- use and eviction ------------------------------------------------------------------

  /// \brief Count reads: `counts` maps keys to how many times each was read. Unknown keys
  /// are ignored. An implementation may apply them a little later (batched).
  virtual arrow::Status Touch(const std::vector<std::pair<std::string, int64_t>>& counts,
                              int64_t now_ms, const ScoringPolicy& scoring) = 0;
  virtual arrow::Result<std::optional<KeyUsage>> Usage(const std::string& key) = 0;
  /// \brief Up to `limit` keys with the lowest scores, from the `offset`-th on.
  virtual arrow::Result<std::vector<std::pair<std::string, KeyUsage>>> LowestScored(
      int64_t offset, int64_t limit) = 0;

  // --- settings ----------------------------------------------------------------------------

  /// \brief Run-time settings (name -> JSON value text), shared by every node.
  virtual arrow::Result<std::map<std::string, std::string>> GetSettings() = 0;
  /// \brief Set the given settings (the others stay).
  virtual arrow::Status SetSettings(const std::map<std::string, std::string>& settings) = 0;

  // --- leases ------------------------------------------------------------------------------

  /// \brief Take lease `name` for `ttl_ms` unless someone holds it. Each grant gets a new
  /// fencing token, larger than every token granted before.
  virtual arrow::Result<LeaseGrant> AcquireLease(const std::string& name,
                                                 const std::string& owner,
                                                 const std::string& endpoint,
                                                 int64_t ttl_ms) = 0;
  /// \brief Extend a held lease; false if it is no longer held with `token`.
  virtual arrow::Result<bool> RenewLease(const LeaseRef& lease, int64_t ttl_ms) = 0;
  /// \brief Give a lease up, if it is still held with its token.
  virtual arrow::Status ReleaseLease(const LeaseRef& lease) = 0;
  virtual arrow::Result<std::optional<LeaseHolder>> GetLease(const std::string& name) = 0;

  // --- rebuilding ---------------------------------------------------------------------------

  /// \brief Insert `entry` as found in storage, without the compare-and-set rule (rebuilding
  /// from manifests). Its key's use starts as one access at `entry.created_ms`. Restoring
  /// the same entry again is a no-op; another entry under the same version is
  /// AlreadyExists; once the index was marked rebuilt, Cancelled (another rebuilder won).
  virtual arrow::Status Restore(const EntryMeta& entry, const ScoringPolicy& scoring) = 0;
  /// \brief True if the index holds nothing trustworthy yet and must be rebuilt from the
  /// manifests (a new embedded index; a Redis that lost its data).
  virtual arrow::Result<bool> NeedsRebuild() = 0;
  /// \brief The rebuild is complete: the index serves and accepts publishes. Generations and
  /// fencing tokens continue above anything issued before the index lost its data, and
  /// snapshots taken before are refused.
  virtual arrow::Status MarkRebuilt() = 0;

  // --- nodes ---------------------------------------------------------------------------------

  /// \brief Tell the other nodes (no-op for an index that only one node uses).
  virtual arrow::Status Announce(const IndexEvent& event) = 0;
  /// \brief Hear what other nodes announce, and (with `true`) when a connection that may
  /// have missed announcements was re-established. Call before the index is used.
  virtual void Subscribe(std::function<void(const IndexEvent&)> on_event,
                         std::function<void(bool resubscribed)> on_connection) = 0;
  /// \brief A secret only the cache's nodes know (for node-to-node tickets). `refresh`
  /// reads it from the index again (a ticket was refused: the index may have been rebuilt
  /// with another secret); otherwise a copy kept from the last read may be returned.
  virtual arrow::Result<std::string> ClusterSecret(bool refresh) = 0;

  virtual IndexHealth Health() = 0;
  /// \brief True if other nodes share this index.
  virtual bool shared() const = 0;
  /// \brief e.g. "embedded" or "redis://127.0.0.1:6379/0 (prefix quiver)".
  virtual std::string Describe() const = 0;
};

/// \brief A status for an index that cannot be reached (or is being rebuilt); the server
/// answers UNAVAILABLE.
arrow::Status IndexUnavailable(std::string message);
bool IsIndexUnavailable(const arrow::Status& status);

}  // namespace quiver
