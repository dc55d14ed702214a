#include "cache/object_cache.h"

#include <random>

#include <arrow/ipc/writer.h>
#include <arrow/type.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "format/checksum.h"

namespace quiver {

namespace {

std::string NewDataBlobName() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng(), lo = rng();
  // Shard by the first byte so no directory grows unboundedly.
  return fmt::format("{}{:02x}/{:016x}{:016x}.arrows", kDataRoot, hi >> 56, hi, lo);
}

std::string SchemaFingerprint(const arrow::Schema& schema) {
  Checksum sum;
  const std::string& fp = schema.fingerprint();
  const std::string& mfp = schema.metadata_fingerprint();
  sum.Update(fp.data(), fp.size());
  sum.Update(mfp.data(), mfp.size());
  return sum.HexDigest();
}

}  // namespace

class ObjectPutWriter final : public PutWriter {
 public:
  ObjectPutWriter(ObjectCache* cache, ObjectKey key, PutOptions options,
                  std::unique_ptr<BlobWriter> blob, std::shared_ptr<arrow::Schema> schema)
      : cache_(cache),
        key_(std::move(key)),
        options_(options),
        blob_(std::move(blob)),
        counted_(blob_.get()),
        schema_(std::move(schema)) {}

  ~ObjectPutWriter() override { Abort(); }

  arrow::Status Start() {
    ARROW_ASSIGN_OR_RAISE(ipc_, arrow::ipc::MakeStreamWriter(&counted_, schema_));
    return CheckSize();
  }

  arrow::Status Write(const arrow::RecordBatch& batch) override {
    if (done_) return arrow::Status::Invalid("put of '", key_.ToString(), "' already finished");
    if (!batch.schema()->Equals(*schema_, /*check_metadata=*/false)) {
      return Fail(arrow::Status::Invalid("batch schema differs from the stream's schema"));
    }
    auto valid = cache_->options_.validate_full_on_put ? batch.ValidateFull() : batch.Validate();
    if (!valid.ok()) {
      return Fail(arrow::Status::Invalid("malformed record batch ", batches_, ": ",
                                         valid.message()));
    }
    auto st = ipc_->WriteRecordBatch(batch);
    if (!st.ok()) return Fail(st);
    rows_ += batch.num_rows();
    ++batches_;
    return CheckSize();
  }

  arrow::Result<EntryMeta> Commit() override {
    if (done_) return arrow::Status::Invalid("put of '", key_.ToString(), "' already finished");
    auto st = ipc_->Close();
    if (st.ok()) st = CheckSize();
    if (st.ok()) st = blob_->Commit();
    if (!st.ok()) return Fail(st);
    done_ = true;

    EntryMeta meta;
    meta.key = key_.ToString();
    meta.blob = blob_->name();
    meta.bytes = counted_.bytes_written();
    meta.rows = rows_;
    meta.batches = batches_;
    meta.schema_fingerprint = SchemaFingerprint(*schema_);
    meta.checksum = counted_.HexDigest();
    auto published = cache_->Publish(key_, std::move(meta), options_);
    if (!published.ok()) {
      (void)cache_->options_.store->Delete(blob_->name());
      ++cache_->put_failures_;
      return published.status();
    }
    ++cache_->puts_;
    return published;
  }

  void Abort() override {
    if (done_) return;
    done_ = true;
    (void)blob_->Abort();
    ++cache_->put_failures_;
  }

 private:
  arrow::Status CheckSize() {
    int64_t limit = cache_->options_.max_object_bytes;
    if (counted_.bytes_written() > limit) {
      return Fail(arrow::Status::CapacityError(
          "resource exhausted: object '", key_.ToString(), "' exceeds max_object_bytes (",
          limit, " bytes); nothing was stored"));
    }
    return arrow::Status::OK();
  }

  arrow::Status Fail(arrow::Status st) {
    Abort();
    return st;
  }

  ObjectCache* cache_;
  ObjectKey key_;
  PutOptions options_;
  std::unique_ptr<BlobWriter> blob_;
  ChecksummingOutputStream counted_;
  std::shared_ptr<arrow::Schema> schema_;
  std::shared_ptr<arrow::ipc::RecordBatchWriter> ipc_;
  int64_t rows_ = 0;
  int64_t batches_ = 0;
  bool done_ = false;
};

arrow::Result<std::unique_ptr<ObjectCache>> ObjectCache::Open(ObjectCacheOptions options) {
  if (!options.store || !options.index || !options.clock) {
    return arrow::Status::Invalid("ObjectCache needs a store, an index and a clock");
  }
  std::unique_ptr<ObjectCache> cache(new ObjectCache(std::move(options)));
  RecoveryOptions recovery;
  recovery.verify_checksums = cache->options_.verify_on_startup;
  recovery.keep_versions = cache->options_.keep_versions;
  ARROW_ASSIGN_OR_RAISE(cache->recovery_, RecoverIndex(cache->options_.store.get(),
                                                       cache->options_.index.get(), recovery));
  return cache;
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
  ARROW_ASSIGN_OR_RAISE(auto blob, options_.store->OpenWriter(NewDataBlobName()));
  auto writer = std::make_unique<ObjectPutWriter>(this, key, options, std::move(blob),
                                                  std::move(schema));
  ARROW_RETURN_NOT_OK(writer->Start());
  return writer;
}

arrow::Result<EntryMeta> ObjectCache::Publish(const ObjectKey& key, EntryMeta meta,
                                              PutOptions options) {
  std::vector<EntryMeta> trimmed;
  {
    std::lock_guard<std::mutex> lock(KeyLock(key.ToString()));
    ARROW_ASSIGN_OR_RAISE(uint64_t latest, options_.index->LatestVersion(key.ToString()));
    if (options.if_version && latest != *options.if_version) {
      return arrow::Status::AlreadyExists("version conflict: '", key.ToString(),
                                          "' is at version ", latest, ", not ",
                                          *options.if_version);
    }
    meta.version = latest + 1;
    meta.created_ms = options_.clock->NowMillis();
    // The manifest is the publication record in storage: once it is durable the
    // version survives a restart.
    auto manifest = ManifestBlobName(meta.key, meta.version);
    ARROW_RETURN_NOT_OK(options_.store->WriteAll(manifest, ManifestToJson(meta)));
    auto st = options_.index->Publish(meta, latest);
    if (!st.ok()) {
      (void)options_.store->Delete(manifest);
      return st;
    }
    ARROW_ASSIGN_OR_RAISE(trimmed, options_.index->Trim(meta.key, options_.keep_versions));
    // Manifests go first, under the lock, so a concurrent publisher never sees them.
    for (const auto& old : trimmed) {
      auto del = options_.store->Delete(ManifestBlobName(old.key, old.version));
      if (!del.ok()) spdlog::warn("trimming {}@{}: {}", old.key, old.version, del.ToString());
    }
  }
  DropBlobs(trimmed);
  return meta;
}

void ObjectCache::DropBlobs(const std::vector<EntryMeta>& removed) {
  for (const auto& old : removed) {
    auto st = options_.store->Delete(old.blob);
    if (!st.ok()) spdlog::warn("removing {} of {}@{}: {}", old.blob, old.key, old.version,
                               st.ToString());
  }
}

arrow::Result<std::optional<OpenEntry>> ObjectCache::OpenVersion(
    const ObjectKey& key, std::optional<uint64_t> version) {
  // A version can be trimmed or deleted between the lookup and the open; retry once
  // on the newer state rather than fail the read.
  for (int attempt = 0; attempt < 3; ++attempt) {
    ARROW_ASSIGN_OR_RAISE(auto meta, options_.index->Get(key.ToString(), version));
    if (!meta) return std::nullopt;
    auto file = options_.store->OpenReader(meta->blob);
    if (file.ok()) return OpenEntry{std::move(*meta), std::move(*file)};
    if (!file.status().IsKeyError()) return file.status();
  }
  return std::nullopt;
}

arrow::Result<std::optional<OpenEntry>> ObjectCache::Get(const ObjectKey& key,
                                                         std::optional<uint64_t> version) {
  ++gets_;
  ARROW_ASSIGN_OR_RAISE(auto entry, OpenVersion(key, version));
  ++(entry ? hits_ : misses_);
  return entry;
}

arrow::Result<std::optional<OpenEntry>> ObjectCache::Peek(const ObjectKey& key,
                                                          std::optional<uint64_t> version) {
  return OpenVersion(key, version);
}

arrow::Result<std::vector<EntryMeta>> ObjectCache::List(const std::string& prefix) {
  return options_.index->ListLatest(prefix);
}

arrow::Result<uint64_t> ObjectCache::LatestVersion(const ObjectKey& key) {
  return options_.index->LatestVersion(key.ToString());
}

arrow::Result<int64_t> ObjectCache::Delete(const ObjectKey& key) {
  std::vector<EntryMeta> removed;
  {
    std::lock_guard<std::mutex> lock(KeyLock(key.ToString()));
    ARROW_ASSIGN_OR_RAISE(removed, options_.index->Remove(key.ToString()));
    for (const auto& old : removed) {
      ARROW_RETURN_NOT_OK(options_.store->Delete(ManifestBlobName(old.key, old.version)));
    }
  }
  DropBlobs(removed);
  return static_cast<int64_t>(removed.size());
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
  return stats;
}

}  // namespace quiver
