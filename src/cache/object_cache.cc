#include "cache/object_cache.h"

#include <algorithm>
#include <deque>
#include <map>
#include <random>
#include <set>

#include <arrow/ipc/writer.h>
#include <arrow/type.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/config.h"


namespace quiver {

namespace {

arrow::Status NotCommitted(const std::string& changed, const std::string& key) {
  return arrow::Status::Cancelled("not committed: ", changed, " was invalidated while '", key,
                                  "' was being computed; nothing was stored");
}

std::string NewDataBlobName() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng(), lo = rng();
  // Shard by the first byte so no directory grows unboundedly.
  return fmt::format("{}{:02x}/{:016x}{:016x}.arrows", kDataRoot, hi >> 56, hi, lo);
}

// An object put: Arrow's IPC writer encodes each batch once, into the EntryWriter.
class ObjectPutWriter final : public PutWriter {
 public:
  ObjectPutWriter(std::unique_ptr<EntryWriter> entry, PutOptions options, bool validate_full,
                  std::shared_ptr<arrow::Schema> schema)
      : entry_(std::move(entry)),
        options_(options),
        validate_full_(validate_full),
        schema_(std::move(schema)) {}

  arrow::Status Start() {
    entry_->SetSchema(*schema_);
    ARROW_ASSIGN_OR_RAISE(ipc_, arrow::ipc::internal::OpenRecordBatchWriter(
                                    std::make_unique<EntryPayloadSink>(entry_.get()), schema_));
    return arrow::Status::OK();
  }

  arrow::Status Write(const arrow::RecordBatch& batch) override {
    if (!batch.schema()->Equals(*schema_, /*check_metadata=*/false)) {
      return Fail(arrow::Status::Invalid("batch schema differs from the stream's schema"));
    }
    auto valid = validate_full_ ? batch.ValidateFull() : batch.Validate();
    if (!valid.ok()) {
      return Fail(arrow::Status::Invalid("malformed record batch ", batches_, ": ",
                                         valid.message()));
    }
    auto st = ipc_->WriteRecordBatch(batch);
    if (!st.ok()) return Fail(st);
    entry_->CountBatch(batch.num_rows());
    ++batches_;
    return arrow::Status::OK();
  }

  arrow::Result<EntryMeta> Commit() override {
    auto st = ipc_->Close();
    if (!st.ok()) return Fail(st);
    return entry_->Commit(EntryMeta{}, options_);
  }

  void Abort() override { entry_->Abort(); }

 private:
  arrow::Status Fail(arrow::Status st) {
    entry_->Abort();
    return st;
  }

  std::unique_ptr<EntryWriter> entry_;
  PutOptions options_;
  bool validate_full_;
  std::shared_ptr<arrow::Schema> schema_;
  std::shared_ptr<arrow::ipc::RecordBatchWriter> ipc_;
  int64_t batches_ = 0;
};

}  // namespace

arrow::Result<std::unique_ptr<ObjectCache>> ObjectCache::Open(ObjectCacheOptions options) {
  if (!options.store || !options.index || !options.clock) {
    return arrow::Status::Invalid("ObjectCache needs a store, an index and a clock");
  }
  std::unique_ptr<ObjectCache> cache(new ObjectCache(std::move(options)));
  auto& o = cache->options_;
  ARROW_ASSIGN_OR_RAISE(cache->budget_, Budget::Make(o.budget, o.clock));
  cache->memory_ = std::make_unique<MemoryTier>(
      o.memory_size, o.memory_max_entry_bytes > 0 ? o.memory_max_entry_bytes : o.memory_size / 8);
  ARROW_RETURN_NOT_OK(cache->LoadRuntimeSettings());

  RecoveryOptions recovery;
  recovery.verify_checksums = o.verify_on_startup;
  recovery.keep_versions = o.keep_versions;
  recovery.now_ms = o.clock->NowMillis();
  std::vector<EntryMeta> restored;
  ARROW_ASSIGN_OR_RAISE(cache->recovery_,
                        RecoverIndex(o.store.get(), o.index.get(), recovery, &restored));
  // Feed the budget oldest first, so that recency starts out as creation order.
  std::map<std::string, std::pair<int64_t, const EntryMeta*>> by_key;  // bytes, latest
  for (const auto& meta : restored) {
    auto& slot = by_key[meta.key];
    slot.first += meta.bytes;
    if (!slot.second || slot.second->version < meta.version) slot.second = &meta;
  }
  std::vector<std::pair<int64_t, std::string>> order;
  for (const auto& [key, slot] : by_key) order.emplace_back(slot.second->created_ms, key);
  std::sort(order.begin(), order.end());
  for (const auto& [created, key] : order) {
    const auto& [bytes, latest] = by_key[key];
    cache->budget_->Record(key, bytes, latest->cost_ms / 1000.0, created, 0);
  }
  cache->LoadUsage();
  // The limits may have been lowered since these were stored.
  auto over = cache->budget_->PickToFit();
  if (!over.empty()) {
    ARROW_RETURN_NOT_OK(cache->EvictKeys(over));
    auto settings = cache->budget_->settings();
    spdlog::info("evicted {} entries at startup to fit cache_size {} and max_entries {}",
                 over.size(), FormatByteSize(settings.cache_size), settings.max_entries);
  }
  if (o.usage_save_interval_s > 0) {
    cache->usage_saver_ = std::thread([c = cache.get()] { c->UsageSaverLoop(); });
  }
  return cache;
}

ObjectCache::~ObjectCache() {
  {
    std::lock_guard<std::mutex> lock(usage_saver_mutex_);
    usage_saver_stopping_ = true;
  }
  usage_saver_cv_.notify_all();
  if (usage_saver_.joinable()) usage_saver_.join();
  if (budget_) {
    auto st = SaveUsage();
    if (!st.ok()) spdlog::warn("saving access histories: {}", st.ToString());
  }
}

std::mutex& ObjectCache::KeyLock(const std::string& key) {
  return key_locks_[std::hash<std::string>{}(key) % key_locks_.size()];
}

arrow::Result<std::unique_ptr<PutWriter>> ObjectCache::BeginPut(
    const ObjectKey& key, std::shared_ptr<arrow::Schema> schema, PutOptions options) {
  if (options.if_version) {
    ARROW_ASSIGN_OR_RAISE(uint64_t latest, options_.index->LatestVersion(key.ToString()));
    if (latest != *options.if_version) {
      ++put_failures_;
      return arrow::Status::AlreadyExists("version conflict: '", key.ToString(),
                                          "' is at version ", latest, ", not ",
                                          *options.if_version);
    }
  }
  options.generations = Snapshot(options.depends_on, options.tags);
  ARROW_ASSIGN_OR_RAISE(auto entry, BeginEntry(key.ToString(), options_.max_object_bytes,
                                                "max_object_bytes; nothing was stored"));
  auto writer = std::make_unique<ObjectPutWriter>(std::move(entry), options,
                                                  options_.validate_full_on_put,
                                                  std::move(schema));
  ARROW_RETURN_NOT_OK(writer->Start());
  return writer;
}

arrow::Result<std::unique_ptr<EntryWriter>> ObjectCache::BeginEntry(const std::string& key,
                                                                    int64_t max_bytes,
                                                                    std::string limit_name) {
  ARROW_ASSIGN_OR_RAISE(auto blob, options_.store->OpenWriter(NewDataBlobName()));
  return std::make_unique<EntryWriter>(this, key, std::move(blob), max_bytes,
                                       std::move(limit_name));
}

arrow::Result<EntryMeta> ObjectCache::Publish(EntryMeta meta, PutOptions options) {
  const bool query = meta.is_query();
  const int64_t keep = query ? 1 : options_.keep_versions;
  // Make room first, outside every key lock (evicting takes the victims' key locks).
  auto victims = budget_->Reserve(meta.key, meta.bytes);
  if (!victims.ok() && budget_->Usage(meta.key)) {
    // When the budget is tight, this key's older versions go before the new one is
    // refused (its latest stays until the new one replaces it).
    ARROW_RETURN_NOT_OK(TrimKey(meta.key, 1));
    victims = budget_->Reserve(meta.key, meta.bytes);
  }
  if (!victims.ok()) {
    ++not_admitted_;
    return victims.status();
  }
  int64_t reserved = meta.bytes;
  struct Unreserve {
    Budget* budget;
    int64_t* bytes;
    ~Unreserve() {
      if (*bytes) budget->Unreserve(*bytes);
    }
  } unreserve{budget_.get(), &reserved};
  ARROW_RETURN_NOT_OK(EvictKeys(*victims));

  // An object's new version makes everything computed from the previous one stale; a
  // query result's was already announced when its fill started (NewVersionComing).
  const bool replaces = !IsQueryKey(meta.key);
  std::vector<EntryMeta> trimmed;
  {
    std::shared_lock<std::shared_mutex> invalidation(invalidation_mutex_);
    std::lock_guard<std::mutex> lock(KeyLock(meta.key));
    if (auto changed = ChangedSince(options.generations)) {  // fail fast; re-checked below
      return NotCommitted(*changed, meta.key);
    }
    ARROW_ASSIGN_OR_RAISE(uint64_t latest, options_.index->LatestVersion(meta.key));
    if (options.if_version && latest != *options.if_version) {
      return arrow::Status::AlreadyExists("version conflict: '", meta.key, "' is at version ",
                                          latest, ", not ", *options.if_version);
    }
    meta.version = latest + 1;
    if (meta.created_ms == 0) meta.created_ms = options_.clock->NowMillis();
    // The manifest is the publication record in storage: once it is durable the
    // version survives a restart.
    auto manifest = ManifestBlobName(meta.key, meta.version);
    ARROW_RETURN_NOT_OK(options_.store->WriteAll(manifest, ManifestToJson(meta)));
    arrow::Status published;
    {
      // The generation check, this key's bump and the index publish are one step, so a
      // new version of a dependency either comes first (and this is refused) or finds
      // this entry among its dependents when it cascades.
      std::lock_guard<std::mutex> gens(generations_mutex_);
      if (auto changed = ChangedSinceLocked(options.generations)) {
        published = NotCommitted(*changed, meta.key);
      } else {
        if (replaces) BumpLocked("k:" + meta.key);
        published = options_.index->Publish(meta, latest);
      }
    }
    if (!published.ok()) {
      auto removed = options_.store->Delete(manifest);
      if (!removed.ok()) {  // it would be restored at the next start
        spdlog::error("removing the manifest of refused {}@{}: {}", meta.key, meta.version,
                      removed.ToString());
      }
      return published;
    }
    ARROW_ASSIGN_OR_RAISE(trimmed, options_.index->Trim(meta.key, keep));
    // Manifests go first, under the lock, so a concurrent publisher never sees them.
    int64_t total = meta.bytes;
    if (auto usage = budget_->Usage(meta.key)) total += usage->bytes;
    for (const auto& old : trimmed) {
      total -= old.bytes;
      auto del = options_.store->Delete(ManifestBlobName(old.key, old.version));
      if (!del.ok()) spdlog::warn("trimming {}@{}: {}", old.key, old.version, del.ToString());
    }
    budget_->Record(meta.key, total, meta.cost_ms / 1000.0, meta.created_ms, reserved);
    reserved = 0;
  }
  for (const auto& old : trimmed) memory_->Erase(old.key, old.blob);
  DropBlobs(trimmed);
  if (!query) ++puts_;
  if (replaces) ARROW_RETURN_NOT_OK(InvalidateDependents(meta.key, "new version of"));
  return meta;
}

arrow::Status ObjectCache::NewVersionComing(const std::string& key) {
  {
    std::lock_guard<std::mutex> gens(generations_mutex_);
    BumpLocked("k:" + key);
  }
  return InvalidateDependents(key, "refilling");
}

arrow::Status ObjectCache::InvalidateDependents(const std::string& key, const char* why) {
  ARROW_ASSIGN_OR_RAISE(auto dependents, options_.index->Dependents(key));
  if (dependents.empty()) return arrow::Status::OK();
  ARROW_ASSIGN_OR_RAISE(auto removed, InvalidateClosure(dependents, true, ""));
  spdlog::info("{} {} invalidated {} dependent entries", why, key, removed.size());
  return arrow::Status::OK();
}

arrow::Status ObjectCache::TrimKey(const std::string& key, int64_t keep) {
  std::vector<EntryMeta> trimmed;
  {
    std::lock_guard<std::mutex> lock(KeyLock(key));
    ARROW_ASSIGN_OR_RAISE(trimmed, options_.index->Trim(key, keep));
    if (trimmed.empty()) return arrow::Status::OK();
    int64_t freed = 0;
    for (const auto& old : trimmed) {
      freed += old.bytes;
      ARROW_RETURN_NOT_OK(options_.store->Delete(ManifestBlobName(old.key, old.version)));
    }
    ARROW_ASSIGN_OR_RAISE(auto latest, options_.index->Get(key, std::nullopt));
    if (auto usage = budget_->Usage(key); usage && latest) {
      budget_->Record(key, usage->bytes - freed, latest->cost_ms / 1000.0, latest->created_ms, 0);
    }
  }
  for (const auto& old : trimmed) memory_->Erase(old.key, old.blob);
  DropBlobs(trimmed);
  return arrow::Status::OK();
}

void ObjectCache::DropBlobs(const std::vector<EntryMeta>& removed) {
  for (const auto& old : removed) {
    auto st = options_.store->Delete(old.blob);
    if (!st.ok()) spdlog::warn("removing {} of {}@{}: {}", old.blob, old.key, old.version,
                               st.ToString());
  }
}

arrow::Result<std::optional<OpenEntry>> ObjectCache::OpenVersion(
    const std::string& key, std::optional<uint64_t> version, bool count_access) {
  // A version can be trimmed or deleted between the lookup and the open; retry on the
  // newer state rather than fail the read.
  for (int attempt = 0; attempt < 3; ++attempt) {
    ARROW_ASSIGN_OR_RAISE(auto meta, options_.index->Get(key, version));
    if (!meta) return std::nullopt;
    if (count_access) budget_->Touch(key);
    if (auto in_memory = memory_->Lookup(key, meta->blob)) {
      return OpenEntry{std::move(*meta), std::move(in_memory)};
    }
    auto file = options_.store->OpenReader(meta->blob);
    if (file.ok()) {
      if (count_access) {
        auto st = memory_->Promote(key, meta->blob, file->get());
        if (!st.ok()) spdlog::warn("promoting {} to memory: {}", key, st.ToString());
      }
      return OpenEntry{std::move(*meta), std::move(*file)};
    }
    if (!file.status().IsKeyError()) return file.status();
  }
  return std::nullopt;
}

arrow::Result<std::optional<OpenEntry>> ObjectCache::Get(const ObjectKey& key,
                                                         std::optional<uint64_t> version) {
  ++gets_;
  ARROW_ASSIGN_OR_RAISE(auto entry, OpenVersion(key.ToString(), version, true));
  ++(entry ? hits_ : misses_);
  return entry;
}

arrow::Result<std::optional<OpenEntry>> ObjectCache::Peek(const ObjectKey& key,
                                                          std::optional<uint64_t> version) {
  return OpenVersion(key.ToString(), version, false);
}

arrow::Result<std::optional<OpenEntry>> ObjectCache::OpenLatest(const std::string& key) {
  return OpenVersion(key, std::nullopt, true);
}

arrow::Result<std::vector<EntryMeta>> ObjectCache::List(const std::string& prefix) {
  ARROW_ASSIGN_OR_RAISE(auto all, options_.index->ListLatest(prefix));
  std::erase_if(all, [](const EntryMeta& m) { return m.is_query(); });
  return all;
}

arrow::Result<uint64_t> ObjectCache::LatestVersion(const ObjectKey& key) {
  return options_.index->LatestVersion(key.ToString());
}

arrow::Result<int64_t> ObjectCache::Delete(const ObjectKey& key) {
  return DeleteKey(key.ToString());
}

arrow::Result<int64_t> ObjectCache::DeleteKey(const std::string& key) {
  {
    // A fill or put computed from this key must not commit after it is gone.
    std::lock_guard<std::mutex> gens(generations_mutex_);
    BumpLocked("k:" + key);
  }
  return RemoveKey(key);
}

arrow::Result<int64_t> ObjectCache::RemoveKey(const std::string& key,
                                              std::optional<int64_t> only_if_expired_at) {
  std::vector<EntryMeta> removed;
  {
    std::lock_guard<std::mutex> lock(KeyLock(key));
    if (only_if_expired_at) {
      ARROW_ASSIGN_OR_RAISE(auto latest, options_.index->Get(key, std::nullopt));
      if (!latest || !latest->expired(*only_if_expired_at)) return 0;
    }
    ARROW_ASSIGN_OR_RAISE(removed, options_.index->Remove(key));
    // Oldest first: a crash part-way leaves the newest versions (as if the removal had not
    // happened), never an older version as the latest.
    std::sort(removed.begin(), removed.end(),
              [](const EntryMeta& a, const EntryMeta& b) { return a.version < b.version; });
    for (const auto& old : removed) {
      ARROW_RETURN_NOT_OK(options_.store->Delete(ManifestBlobName(old.key, old.version)));
    }
    budget_->Forget(key);
  }
  memory_->Erase(key);
  DropBlobs(removed);
  return static_cast<int64_t>(removed.size());
}

arrow::Status ObjectCache::EvictKeys(const std::vector<std::string>& keys) {
  for (const auto& key : keys) {
    ARROW_ASSIGN_OR_RAISE(int64_t n, RemoveKey(key));
    if (n > 0) {
      ++evictions_;
      spdlog::debug("evicted {}", key);
    }
  }
  return arrow::Status::OK();
}

arrow::Result<int64_t> ObjectCache::DeleteKeyIfExpired(const std::string& key, int64_t now_ms) {
  return RemoveKey(key, now_ms);
}

arrow::Result<std::vector<std::string>> ObjectCache::DeletePrefix(const std::string& prefix,
                                                                  int64_t* versions) {
  ARROW_ASSIGN_OR_RAISE(auto keys, options_.index->KeysUnder(prefix));
  std::vector<std::string> deleted;
  for (const auto& text : keys) {
    ARROW_ASSIGN_OR_RAISE(auto key, ObjectKey::Parse(text));
    ARROW_ASSIGN_OR_RAISE(int64_t n, Delete(key));
    if (n > 0) deleted.push_back(text);
    if (versions) *versions += n;
  }
  return deleted;
}

arrow::Result<CacheStats> ObjectCache::Stats() {
  CacheStats stats;
  ARROW_ASSIGN_OR_RAISE(stats.index, options_.index->Stats());
  stats.puts = puts_;
  stats.put_failures = put_failures_;
  stats.gets = gets_;
  stats.hits = hits_;
  stats.misses = misses_;
  stats.not_modified = not_modified_;
  stats.evictions = evictions_;
  stats.invalidations = invalidations_;
  stats.not_admitted = not_admitted_;
  stats.budget = budget_->settings();
  stats.budget_used = budget_->used_bytes();
  stats.memory = memory_->Stats();
  return stats;
}

}  // namespace quiver
