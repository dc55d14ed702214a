// EmbeddedIndex: entries, publication, removal and listing. Use, settings and leases are in
// embedded_index_usage.cc.
#include "index/embedded_index.h"

#include <algorithm>
#include <mutex>
#include <random>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>

#include "common/hex.h"
#include "common/key.h"

namespace quiver {

namespace {

// The saved access histories of keys asked for in ascending order: a walk along the records
// when they are in key order (as ExportUsage writes them), a hash table when not (files of
// earlier releases).
class SavedHistories {
 public:
  explicit SavedHistories(const UsageSnapshot* usage) {
    if (!usage) return;
    records_ = &usage->records;
    const bool sorted = std::is_sorted(
        records_->begin(), records_->end(),
        [](const UsageRecord& a, const UsageRecord& b) { return a.key < b.key; });
    if (sorted) return;
    by_key_.reserve(records_->size());
    for (const auto& r : *records_) by_key_.emplace(r.key, &r);
  }
  const UsageRecord* Find(const std::string& key) {
    if (!records_) return nullptr;
    if (!by_key_.empty()) {
      auto it = by_key_.find(key);
      return it == by_key_.end() ? nullptr : it->second;
    }
    while (next_ < records_->size() && (*records_)[next_].key < key) ++next_;
    if (next_ < records_->size() && (*records_)[next_].key == key) return &(*records_)[next_];
    return nullptr;
  }

 private:
  const std::vector<UsageRecord>* records_ = nullptr;
  size_t next_ = 0;
  std::unordered_map<std::string_view, const UsageRecord*> by_key_;
};

std::vector<uint64_t> VersionsOf(const std::vector<EntryMeta>& entries) {
  std::vector<uint64_t> out;
  out.reserve(entries.size());
  for (const auto& e : entries) out.push_back(e.version);
  return out;
}

}  // namespace

EmbeddedIndex::EmbeddedIndex(std::shared_ptr<Clock> clock, size_t max_generations)
    : clock_(std::move(clock)),
      secret_(SecretHex(16)),
      generations_(max_generations),
      leases_(clock_),
      queue_(*MakeEvictionPolicy(scoring_.name, scoring_.half_life)) {}

arrow::Result<std::optional<EntryMeta>> EmbeddedIndex::Get(const std::string& key,
                                                           std::optional<uint64_t> version) {
  std::shared_lock lock(mutex_);
  const auto* item = queue_.FindItem(key);
  if (item == nullptr) return std::nullopt;
  const VersionList& versions = item->payload.versions;
  if (!version) return versions.latest().Unpack(key);
  const auto* meta = versions.Find(*version);
  if (meta == nullptr) return std::nullopt;
  return meta->Unpack(key);
}

arrow::Result<std::vector<std::optional<EntryMeta>>> EmbeddedIndex::GetMany(
    const std::vector<std::pair<std::string, uint64_t>>& versions) {
  std::shared_lock lock(mutex_);
  std::vector<std::optional<EntryMeta>> out;
  out.reserve(versions.size());
  for (const auto& [key, version] : versions) {
    const auto* item = queue_.FindItem(key);
    const auto* meta = item ? item->payload.versions.Find(version) : nullptr;
    out.push_back(meta ? std::optional<EntryMeta>(meta->Unpack(key)) : std::nullopt);
  }
  return out;
}

PublishOutcome EmbeddedIndex::CheckLocked(const PublishRequest& request,
                                          const KeyState* state) {
  PublishOutcome outcome;
  const PackedEntry* latest = state ? &state->versions.latest() : nullptr;
  const uint64_t current = latest ? latest->version() : 0;
  const std::string current_blob = latest ? latest->blob() : std::string();
  if (current != request.expected_version || current_blob != request.expected_blob ||
      request.entry.version != request.expected_version + 1) {
    outcome.refusal = Refusal::kVersionConflict;
    outcome.current_version = current;
    outcome.detail = std::to_string(current);
    return outcome;
  }
  // A fenced writer is told so first: whatever else changed, it lost its lease.
  if (request.lease && !leases_.Holds(*request.lease)) {
    outcome.refusal = Refusal::kLeaseLost;
    auto holder = leases_.Get(request.lease->name);
    outcome.detail = holder ? fmt::format("held by {} with token {}", holder->owner,
                                          holder->token)
                            : "expired";
    return outcome;
  }
  if (auto changed = generations_.ChangedSince(request.watched, request.since.counter)) {
    outcome.refusal = Refusal::kStaleGeneration;
    outcome.detail = changed->size() > 2 ? changed->substr(2) : "";
    return outcome;
  }
  return outcome;
}

bool EmbeddedIndex::OverBudget(const BudgetLimits& limits, const IndexStats& now,
                               int64_t bytes_after, int64_t keys_after) {
  auto over = [&](int64_t bytes, int64_t keys) {
    return bytes > limits.cache_size || (limits.max_entries > 0 && keys > limits.max_entries);
  };
  if (!over(bytes_after, keys_after)) return false;
  return !limits.allow_one_over || over(now.bytes, now.keys);
}

void EmbeddedIndex::CountLocked(const std::string& tenant, int64_t keys, int64_t versions,
                                int64_t bytes) {
  stats_.keys += keys;
  stats_.versions += versions;
  stats_.bytes += bytes;
  if (tenant.empty()) return;
  auto& t = tenant_stats_[tenant];
  t.keys += keys;
  t.bytes += bytes;
  if (t.keys == 0 && t.bytes == 0) tenant_stats_.erase(tenant);
}

arrow::Result<PublishOutcome> EmbeddedIndex::Publish(const PublishRequest& request) {
  const EntryMeta& entry = request.entry;
  std::unique_lock lock(mutex_);
  Queue::Item* item = queue_.FindItem(entry.key);
  KeyState* state = item ? &item->payload : nullptr;
  PublishOutcome outcome = CheckLocked(request, state);
  if (!outcome.published()) return outcome;
  // What trimming will free, to check the budget before changing anything.
  const int64_t keep = std::max<int64_t>(request.keep_versions, 1);
  const int64_t freed = state ? TrimmedBytes(*state, keep - 1) : 0;
  const int64_t new_keys = state ? 0 : 1;
  if (request.budget && OverBudget(*request.budget, stats_, stats_.bytes + entry.bytes - freed,
                                   stats_.keys + new_keys)) {
    outcome.refusal = Refusal::kOverBudget;
    outcome.detail = fmt::format("{} bytes in {} keys stored", stats_.bytes, stats_.keys);
    return outcome;
  }
  if (request.tenant_budget) {
    const auto tenant = EntryTenant(entry);
    auto found = tenant_stats_.find(tenant);
    const IndexStats now = found == tenant_stats_.end() ? IndexStats{} : found->second;
    if (!tenant.empty() && OverBudget(*request.tenant_budget, now,
                                      now.bytes + entry.bytes - freed, now.keys + new_keys)) {
      outcome.refusal = Refusal::kOverBudget;
      outcome.detail =
          fmt::format("tenant '{}': {} bytes in {} keys stored", tenant, now.bytes, now.keys);
      return outcome;
    }
  }
  KeyState added;  // a new key's, moved into the queue below
  if (state) {
    LinkLocked(entry.key, state->versions.latest(), /*link=*/false);
  } else {
    state = &added;
  }
  state->versions.Add(PackedEntry::Pack(entry));  // CheckLocked: the next version
  int64_t key_bytes = (item ? item->entry.bytes : 0) + entry.bytes;
  CountLocked(EntryTenant(entry), new_keys, 1, entry.bytes);
  outcome.trimmed = TrimLocked(entry.key, state, keep, &key_bytes);
  if (journal_) {
    std::vector<uint64_t> dropped;
    for (const auto& old : outcome.trimmed) dropped.push_back(old.version);
    journal_->AppendPublish(entry, dropped);
  }
  LinkLocked(entry.key, state->versions.latest(), /*link=*/true);
  if (request.bump_key) generations_.Bump(KeyGeneration(entry.key));
  if (request.lease) leases_.Release(*request.lease);
  UsePolicyLocked(request.scoring);
  // The write is an access.
  auto& node = queue_.Insert(entry.key, key_bytes, entry.cost_ms / 1000.0);
  if (state == &added) node.second.payload = std::move(added);
  node.second.payload.last_access_ms = entry.created_ms;
  return outcome;
}

int64_t EmbeddedIndex::TrimmedBytes(const KeyState& state, int64_t keep) {
  int64_t drop = static_cast<int64_t>(state.versions.size()) - std::max<int64_t>(keep, 0);
  int64_t bytes = 0;
  state.versions.ForEach([&](const PackedEntry& v) {
    if (drop-- > 0) bytes += v.bytes();
  });
  return bytes;
}

std::vector<EntryMeta> EmbeddedIndex::TrimLocked(const std::string& key, KeyState* state,
                                                 int64_t keep, int64_t* key_bytes) {
  std::vector<EntryMeta> removed;
  const std::string tenant = state->versions.latest().tenant(key);
  while (static_cast<int64_t>(state->versions.size()) > std::max<int64_t>(keep, 1)) {
    const PackedEntry oldest = state->versions.PopOldest();
    *key_bytes -= oldest.bytes();
    CountLocked(tenant, 0, -1, -oldest.bytes());
    removed.push_back(oldest.Unpack(key));
  }
  return removed;
}

void EmbeddedIndex::LinkLocked(const std::string& key, const PackedEntry& latest, bool link) {
  auto apply = [&](std::map<std::string, std::set<std::string>>& edges,
                   const std::vector<std::string>& names) {
    for (const auto& name : names) {
      if (link) {
        edges[name].insert(key);
        continue;
      }
      auto it = edges.find(name);
      if (it == edges.end()) continue;
      it->second.erase(key);
      if (it->second.empty()) edges.erase(it);
    }
  };
  apply(dependents_, latest.depends_on());
  apply(tagged_, latest.tags());
}

arrow::Result<std::vector<EntryMeta>> EmbeddedIndex::Remove(const RemoveRequest& request) {
  std::unique_lock lock(mutex_);
  std::vector<EntryMeta> removed;
  Queue::Item* item = queue_.FindItem(request.key);
  if (item != nullptr) {
    const PackedEntry& latest = item->payload.versions.latest();
    if (request.only_if_expired_at && !latest.expired(*request.only_if_expired_at)) {
      return removed;
    }
    if (request.only_if_blob && latest.blob() != *request.only_if_blob) return removed;
    LinkLocked(request.key, latest, /*link=*/false);
  }
  // Even for an absent key: what is being computed from it must not publish after this.
  if (request.bump_key) generations_.Bump(KeyGeneration(request.key));
  if (item == nullptr) return removed;
  const std::string tenant = item->payload.versions.latest().tenant(request.key);
  item->payload.versions.ForEach([&](const PackedEntry& meta) {
    CountLocked(tenant, 0, -1, -meta.bytes());
    removed.push_back(meta.Unpack(request.key));
  });
  CountLocked(tenant, -1, 0, 0);
  queue_.Remove(request.key);
  if (journal_) journal_->AppendDrop(request.key, VersionsOf(removed));
  return removed;
}

arrow::Result<std::vector<EntryMeta>> EmbeddedIndex::Trim(const std::string& key, int64_t keep) {
  std::unique_lock lock(mutex_);
  Queue::Item* item = queue_.FindItem(key);
  if (item == nullptr) return std::vector<EntryMeta>{};
  int64_t key_bytes = item->entry.bytes;
  auto removed = TrimLocked(key, &item->payload, keep, &key_bytes);
  if (!removed.empty()) queue_.Resize(key, key_bytes);
  if (journal_) journal_->AppendDrop(key, VersionsOf(removed));
  return removed;
}

arrow::Result<std::vector<IndexedKey>> EmbeddedIndex::ListLatest(const std::string& prefix) {
  std::shared_lock lock(mutex_);
  std::vector<IndexedKey> out;
  for (auto it = queue_.lower_bound(prefix);
       it != queue_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    IndexedKey item;
    item.latest = it->second.payload.versions.latest().Unpack(it->first);
    item.usage = UsageOf(it->second);
    out.push_back(std::move(item));
  }
  return out;
}

arrow::Result<std::vector<std::string>> EmbeddedIndex::KeysUnder(const std::string& prefix) {
  std::shared_lock lock(mutex_);
  std::vector<std::string> out;
  for (auto it = queue_.lower_bound(prefix);
       it != queue_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (KeyHasSegmentPrefix(it->first, prefix)) out.push_back(it->first);
  }
  return out;
}

arrow::Result<IndexStats> EmbeddedIndex::Stats() {
  std::shared_lock lock(mutex_);
  return stats_;
}

arrow::Result<IndexStats> EmbeddedIndex::TenantStats(const std::string& tenant) {
  std::shared_lock lock(mutex_);
  auto found = tenant_stats_.find(tenant);
  return found == tenant_stats_.end() ? IndexStats{} : found->second;
}

arrow::Result<GenerationSnapshot> EmbeddedIndex::Snapshot() {
  std::shared_lock lock(mutex_);
  return GenerationSnapshot{generations_.counter()};
}

arrow::Result<std::vector<std::string>> EmbeddedIndex::BumpAndCollect(
    const std::vector<std::string>& keys, const std::vector<std::string>& tags) {
  std::unique_lock lock(mutex_);
  std::set<std::string> found;
  for (const auto& key : keys) {
    generations_.Bump(KeyGeneration(key));
    if (auto it = dependents_.find(key); it != dependents_.end()) {
      found.insert(it->second.begin(), it->second.end());
    }
  }
  for (const auto& tag : tags) {
    generations_.Bump(TagGeneration(tag));
    if (auto it = tagged_.find(tag); it != tagged_.end()) {
      found.insert(it->second.begin(), it->second.end());
    }
  }
  return std::vector<std::string>(found.begin(), found.end());
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

arrow::Status EmbeddedIndex::Restore(const EntryMeta& entry, const ScoringPolicy& scoring) {
  std::unique_lock lock(mutex_);
  if (rebuilt_) {
    return arrow::Status::Cancelled("the index was rebuilt meanwhile; not restoring more");
  }
  Queue::Item* item = queue_.FindItem(entry.key);
  if (item != nullptr) {
    if (const auto* existing = item->payload.versions.Find(entry.version)) {
      const EntryMeta found = existing->Unpack(entry.key);
      if (found.blob == entry.blob && found.manifest == entry.manifest) {
        return arrow::Status::OK();  // restored twice: a rebuild started again
      }
      return arrow::Status::AlreadyExists("version ", entry.version, " of '", entry.key,
                                          "' is already in the index");
    }
    LinkLocked(entry.key, item->payload.versions.latest(), /*link=*/false);
  }
  KeyState added;  // a new key's, moved into the queue below
  KeyState& state = item ? item->payload : added;
  state.versions.Add(PackedEntry::Pack(entry));
  CountLocked(EntryTenant(entry), item == nullptr ? 1 : 0, 1, entry.bytes);
  const int64_t key_bytes = (item ? item->entry.bytes : 0) + entry.bytes;
  const PackedEntry& latest = state.versions.latest();
  LinkLocked(entry.key, latest, /*link=*/true);
  const int64_t created_ms = latest.created_ms();
  const double cost_s = latest.cost_ms() / 1000.0;
  UsePolicyLocked(scoring);
  // One access per key, however many versions it has, placed at its latest's restore.
  if (item != nullptr) queue_.RestoreHistory(entry.key, PolicyEntry{});
  auto& node = queue_.Insert(entry.key, key_bytes, cost_s);
  if (item == nullptr) node.second.payload = std::move(added);
  node.second.payload.last_access_ms = created_ms;
  return arrow::Status::OK();
}

arrow::Result<bool> EmbeddedIndex::NeedsRebuild() {
  std::shared_lock lock(mutex_);
  return !rebuilt_;
}

arrow::Status EmbeddedIndex::MarkRebuilt() {
  std::unique_lock lock(mutex_);
  rebuilt_ = true;
  // What began before cannot be checked against the invalidations the index lost.
  generations_.ForgetAll();
  return arrow::Status::OK();
}

void EmbeddedIndex::AttachJournal(IndexJournal* journal) {
  std::unique_lock lock(mutex_);
  journal_ = journal;
}

arrow::Result<int64_t> EmbeddedIndex::LoadRecovered(std::vector<RecoveredEntry> entries,
                                                    const ScoringPolicy& scoring,
                                                    const UsageSnapshot* usage) {
  std::unique_lock lock(mutex_);
  if (queue_.size() != 0 || rebuilt_) {
    return arrow::Status::Invalid("recovered entries go into a new, empty index");
  }
  UsePolicyLocked(scoring);
  SavedHistories saved(usage);
  if (usage) queue_.AdvanceTick(usage->tick);
  // Keys arrive sorted, each key's versions in order: a key's versions are packed, then the
  // key is added at the end of the queue's map with its saved history, or none (those
  // count as accessed in creation order, after every saved one, once all are in).
  std::vector<std::pair<int64_t, const std::string*>> fresh;
  int64_t restored = 0;
  for (size_t i = 0; i < entries.size();) {
    const std::string key = entries[i].key;
    KeyState state;
    int64_t key_bytes = 0;
    const std::string tenant = entries[i].packed.tenant(key);  // every version's
    for (; i < entries.size() && entries[i].key == key; ++i) {
      PackedEntry& packed = entries[i].packed;
      if (!state.versions.empty() && state.versions.latest().version() >= packed.version()) {
        return arrow::Status::Invalid("recovered entries out of order at '", key, "'@",
                                      packed.version());
      }
      CountLocked(tenant, 0, 1, packed.bytes());
      key_bytes += packed.bytes();
      state.versions.Add(std::move(packed));
    }
    const PackedEntry& latest = state.versions.latest();
    const UsageRecord* found = saved.Find(key);
    const bool has_history = found != nullptr;
    auto* node = queue_.Add(key, key_bytes, latest.cost_ms() / 1000.0,
                            has_history ? found->history : PolicyEntry{});
    if (node == nullptr) {
      return arrow::Status::Invalid("recovered entries out of order at '", key, "'");
    }
    CountLocked(tenant, 1, 0, 0);
    LinkLocked(key, latest, /*link=*/true);
    const int64_t created_ms = latest.created_ms();
    node->second.payload = std::move(state);
    node->second.payload.last_access_ms =
        has_history ? found->last_access_ms : created_ms;
    if (has_history) {
      ++restored;
    } else {
      fresh.emplace_back(created_ms, &node->first);
    }
  }
  queue_.OrderAdded();
  std::stable_sort(fresh.begin(), fresh.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [created, key] : fresh) queue_.Touch(*key);
  return restored;
}

arrow::Status EmbeddedIndex::Checkpoint(const std::function<arrow::Status()>& flush) {
  std::unique_ptr<SnapshotWriter> writer;
  {
    std::shared_lock lock(mutex_);
    if (!journal_) return arrow::Status::Invalid("the index has no journal");
    // Changes append to the journal under the exclusive lock: none can happen until the
    // copy is complete, so the snapshot is exactly the state at the log's switch.
    ARROW_ASSIGN_OR_RAISE(writer, journal_->BeginCheckpoint());
    for (const auto& queued : queue_) {
      const std::string& key = queued.first;  // a named reference: lambdas capture it
      arrow::Status status;
      queued.second.payload.versions.ForEach([&](const PackedEntry& meta) {
        if (status.ok()) status = writer->Add(meta.Unpack(key));
      });
      ARROW_RETURN_NOT_OK(status);
    }
  }
  return journal_->FinishCheckpoint(std::move(writer), flush);
}

}  // namespace quiver
