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
  auto it = keys_.find(key);
  if (it == keys_.end()) return std::nullopt;
  if (!version) return it->second.versions.rbegin()->second.Unpack(key);
  const auto* meta = FindVersion(it->second, *version);
  if (meta == nullptr) return std::nullopt;
  return meta->Unpack(key);
}

arrow::Result<std::vector<std::optional<EntryMeta>>> EmbeddedIndex::GetMany(
    const std::vector<std::pair<std::string, uint64_t>>& versions) {
  std::shared_lock lock(mutex_);
  std::vector<std::optional<EntryMeta>> out;
  out.reserve(versions.size());
  for (const auto& [key, version] : versions) {
    auto it = keys_.find(key);
    const auto* meta = it == keys_.end() ? nullptr : FindVersion(it->second, version);
    out.push_back(meta ? std::optional<EntryMeta>(meta->Unpack(key)) : std::nullopt);
  }
  return out;
}

const PackedEntry* EmbeddedIndex::FindVersion(const KeyState& state, uint64_t version) {
  auto v = state.versions.find(version);
  return v == state.versions.end() ? nullptr : &v->second;
}

PublishOutcome EmbeddedIndex::CheckLocked(const PublishRequest& request,
                                          const KeyState* state) {
  PublishOutcome outcome;
  const PackedEntry* latest = state ? &state->versions.rbegin()->second : nullptr;
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

bool EmbeddedIndex::OverBudgetLocked(const BudgetLimits& limits, int64_t bytes_after,
                                     int64_t keys_after) const {
  auto over = [&](int64_t bytes, int64_t keys) {
    return bytes > limits.cache_size || (limits.max_entries > 0 && keys > limits.max_entries);
  };
  if (!over(bytes_after, keys_after)) return false;
  return !limits.allow_one_over || over(stats_.bytes, stats_.keys);
}

arrow::Result<PublishOutcome> EmbeddedIndex::Publish(const PublishRequest& request) {
  const EntryMeta& entry = request.entry;
  std::unique_lock lock(mutex_);
  auto found = keys_.find(entry.key);
  KeyState* state = found == keys_.end() ? nullptr : &found->second;
  PublishOutcome outcome = CheckLocked(request, state);
  if (!outcome.published()) return outcome;
  // What trimming will free, to check the budget before changing anything.
  const int64_t keep = std::max<int64_t>(request.keep_versions, 1);
  const int64_t freed = state ? TrimmedBytes(*state, keep - 1) : 0;
  if (request.budget &&
      OverBudgetLocked(*request.budget, stats_.bytes + entry.bytes - freed,
                       stats_.keys + (state ? 0 : 1))) {
    outcome.refusal = Refusal::kOverBudget;
    outcome.detail = fmt::format("{} bytes in {} keys stored", stats_.bytes, stats_.keys);
    return outcome;
  }
  if (state) {
    LinkLocked(entry.key, state->versions.rbegin()->second, /*link=*/false);
  } else {
    state = &keys_[entry.key];
    ++stats_.keys;
  }
  state->versions.emplace(entry.version, PackedEntry::Pack(entry));
  state->bytes += entry.bytes;
  ++stats_.versions;
  stats_.bytes += entry.bytes;
  outcome.trimmed = TrimLocked(entry.key, state, keep);
  if (journal_) {
    std::vector<uint64_t> dropped;
    for (const auto& old : outcome.trimmed) dropped.push_back(old.version);
    journal_->AppendPublish(entry, dropped);
  }
  LinkLocked(entry.key, state->versions.rbegin()->second, /*link=*/true);
  if (request.bump_key) generations_.Bump(KeyGeneration(entry.key));
  if (request.lease) leases_.Release(*request.lease);
  UsePolicyLocked(request.scoring);
  queue_.Insert(entry.key, state->bytes, entry.cost_ms / 1000.0);  // the write is an access
  state->last_access_ms = entry.created_ms;
  return outcome;
}

int64_t EmbeddedIndex::TrimmedBytes(const KeyState& state, int64_t keep) {
  int64_t drop = static_cast<int64_t>(state.versions.size()) - std::max<int64_t>(keep, 0);
  int64_t bytes = 0;
  for (auto it = state.versions.begin(); drop > 0; ++it, --drop) bytes += it->second.bytes();
  return bytes;
}

std::vector<EntryMeta> EmbeddedIndex::TrimLocked(const std::string& key, KeyState* state,
                                                 int64_t keep) {
  std::vector<EntryMeta> removed;
  auto& versions = state->versions;
  while (static_cast<int64_t>(versions.size()) > std::max<int64_t>(keep, 1)) {
    auto oldest = versions.begin();
    state->bytes -= oldest->second.bytes();
    stats_.bytes -= oldest->second.bytes();
    --stats_.versions;
    removed.push_back(oldest->second.Unpack(key));
    versions.erase(oldest);
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
  auto it = keys_.find(request.key);
  if (it != keys_.end()) {
    const PackedEntry& latest = it->second.versions.rbegin()->second;
    if (request.only_if_expired_at && !latest.expired(*request.only_if_expired_at)) {
      return removed;
    }
    if (request.only_if_blob && latest.blob() != *request.only_if_blob) return removed;
    LinkLocked(request.key, latest, /*link=*/false);
  }
  // Even for an absent key: what is being computed from it must not publish after this.
  if (request.bump_key) generations_.Bump(KeyGeneration(request.key));
  if (it == keys_.end()) return removed;
  for (auto& [version, meta] : it->second.versions) {
    stats_.bytes -= meta.bytes();
    --stats_.versions;
    removed.push_back(meta.Unpack(request.key));
  }
  --stats_.keys;
  keys_.erase(it);
  queue_.Remove(request.key);
  if (journal_) journal_->AppendDrop(request.key, VersionsOf(removed));
  return removed;
}

arrow::Result<std::vector<EntryMeta>> EmbeddedIndex::Trim(const std::string& key, int64_t keep) {
  std::unique_lock lock(mutex_);
  auto it = keys_.find(key);
  if (it == keys_.end()) return std::vector<EntryMeta>{};
  auto removed = TrimLocked(key, &it->second, keep);
  if (!removed.empty()) queue_.Resize(key, it->second.bytes);
  if (journal_) journal_->AppendDrop(key, VersionsOf(removed));
  return removed;
}

arrow::Result<std::vector<IndexedKey>> EmbeddedIndex::ListLatest(const std::string& prefix) {
  std::shared_lock lock(mutex_);
  std::vector<IndexedKey> out;
  for (auto it = keys_.lower_bound(prefix);
       it != keys_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    IndexedKey item;
    item.latest = it->second.versions.rbegin()->second.Unpack(it->first);
    if (auto usage = UsageLocked(it->first)) item.usage = *usage;
    out.push_back(std::move(item));
  }
  return out;
}

arrow::Result<std::vector<std::string>> EmbeddedIndex::KeysUnder(const std::string& prefix) {
  std::shared_lock lock(mutex_);
  std::vector<std::string> out;
  for (auto it = keys_.lower_bound(prefix);
       it != keys_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (KeyHasSegmentPrefix(it->first, prefix)) out.push_back(it->first);
  }
  return out;
}

arrow::Result<IndexStats> EmbeddedIndex::Stats() {
  std::shared_lock lock(mutex_);
  return stats_;
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
  auto [it, inserted_key] = keys_.try_emplace(entry.key);
  KeyState& state = it->second;
  if (auto existing = state.versions.find(entry.version); existing != state.versions.end()) {
    const EntryMeta found = existing->second.Unpack(entry.key);
    if (found.blob == entry.blob && found.manifest == entry.manifest) {
      return arrow::Status::OK();  // restored twice: a rebuild started again
    }
    return arrow::Status::AlreadyExists("version ", entry.version, " of '", entry.key,
                                        "' is already in the index");
  }
  if (!inserted_key) LinkLocked(entry.key, state.versions.rbegin()->second, /*link=*/false);
  state.versions.emplace(entry.version, PackedEntry::Pack(entry));
  if (inserted_key) ++stats_.keys;
  ++stats_.versions;
  stats_.bytes += entry.bytes;
  state.bytes += entry.bytes;
  const PackedEntry& latest = state.versions.rbegin()->second;
  LinkLocked(entry.key, latest, /*link=*/true);
  UsePolicyLocked(scoring);
  // One access per key, however many versions it has, placed at its latest's restore.
  queue_.Remove(entry.key);
  queue_.Insert(entry.key, state.bytes, latest.cost_ms() / 1000.0);
  state.last_access_ms = latest.created_ms();
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

arrow::Result<int64_t> EmbeddedIndex::LoadRecovered(std::vector<EntryMeta> entries,
                                                    const ScoringPolicy& scoring,
                                                    const UsageSnapshot* usage) {
  std::unique_lock lock(mutex_);
  if (!keys_.empty() || rebuilt_) {
    return arrow::Status::Invalid("recovered entries go into a new, empty index");
  }
  UsePolicyLocked(scoring);
  // Keys arrive sorted: each insertion goes at the end of the map.
  for (auto& entry : entries) {
    auto it = keys_.empty() || keys_.rbegin()->first != entry.key
                  ? keys_.emplace_hint(keys_.end(), entry.key, KeyState{})
                  : std::prev(keys_.end());
    if (it->first != entry.key || (!it->second.versions.empty() &&
                                   it->second.versions.rbegin()->first >= entry.version)) {
      return arrow::Status::Invalid("recovered entries out of order at '", entry.key, "'@",
                                    entry.version);
    }
    KeyState& state = it->second;
    if (state.versions.empty()) ++stats_.keys;
    ++stats_.versions;
    stats_.bytes += entry.bytes;
    state.bytes += entry.bytes;
    const uint64_t version = entry.version;
    state.versions.emplace_hint(state.versions.end(), version, PackedEntry::Pack(entry));
    entry = EntryMeta{};  // its strings are not needed any more
  }
  // Saved histories by key (views into `usage`).
  std::unordered_map<std::string_view, const UsageRecord*> saved;
  if (usage) {
    queue_.AdvanceTick(usage->tick);
    saved.reserve(usage->records.size());
    for (const auto& r : usage->records) saved.emplace(r.key, &r);
  }
  // Links and the eviction queue from each key's latest version: a saved history where
  // there is one, else an access in creation order (after every saved one).
  using Item = std::pair<const std::string, KeyState>;
  std::vector<std::pair<int64_t, Item*>> fresh;
  int64_t restored = 0;
  for (auto& item : keys_) {
    auto& [key, state] = item;
    const PackedEntry& latest = state.versions.rbegin()->second;
    LinkLocked(key, latest, /*link=*/true);
    state.last_access_ms = latest.created_ms();
    auto found = saved.find(key);
    if (found != saved.end() &&
        queue_.InsertRestored(key, state.bytes, latest.cost_ms() / 1000.0,
                              found->second->history)) {
      state.last_access_ms = found->second->last_access_ms;
      ++restored;
      continue;
    }
    fresh.emplace_back(latest.created_ms(), &item);
  }
  std::stable_sort(fresh.begin(), fresh.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [created, item] : fresh) {
    queue_.Insert(item->first, item->second.bytes,
                  item->second.versions.rbegin()->second.cost_ms() / 1000.0);
  }
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
    for (const auto& [key, state] : keys_) {
      for (const auto& [version, meta] : state.versions) {
        ARROW_RETURN_NOT_OK(writer->Add(meta.Unpack(key)));
      }
    }
  }
  return journal_->FinishCheckpoint(std::move(writer), flush);
}

}  // namespace quiver
