#include "cache/object_cache.h"

#include <algorithm>

#include <arrow/ipc/writer.h>
#include <arrow/type.h>

#include "cache/object_patch.h"

namespace quiver {

// An object put: Arrow's IPC writer encodes each batch once, into the EntryWriter.
class ObjectCache::Put final : public PutWriter {
 public:
  Put(ObjectCache* cache, std::unique_ptr<EntryWriter> entry, CommitRequest request,
      std::shared_ptr<arrow::Schema> schema, std::optional<int64_t> cost_ms,
      uint64_t base_version)
      : cache_(cache),
        entry_(std::move(entry)),
        request_(std::move(request)),
        schema_(std::move(schema)),
        cost_ms_(cost_ms),
        base_version_(base_version) {}
  ~Put() override { Abort(); }

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
    auto valid = cache_->options_.validate_full_on_put ? batch.ValidateFull() : batch.Validate();
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
    if (done_) return arrow::Status::Invalid("put of '", entry_->key(), "' is already finished");
    done_ = true;
    auto st = ipc_->Close();
    auto finished = st.ok() ? entry_->Finish() : arrow::Result<EntryMeta>(st);
    if (finished.ok() && cost_ms_) finished->cost_ms = *cost_ms_;
    if (finished.ok()) finished->base_version = base_version_;
    auto meta = finished.ok() ? cache_->committer_->Commit(std::move(*finished), request_)
                              : finished;
    ++(meta.ok() ? cache_->puts_ : cache_->put_failures_);
    return meta;
  }

  void Abort() override {
    if (done_) return;
    done_ = true;
    entry_->Abort();
    ++cache_->put_failures_;
  }

 private:
  arrow::Status Fail(arrow::Status st) {
    Abort();
    return st;
  }

  ObjectCache* cache_;
  std::unique_ptr<EntryWriter> entry_;
  CommitRequest request_;
  std::shared_ptr<arrow::Schema> schema_;
  std::shared_ptr<arrow::ipc::RecordBatchWriter> ipc_;
  std::optional<int64_t> cost_ms_;
  uint64_t base_version_;  // 0: a full version
  int64_t batches_ = 0;
  bool done_ = false;
};

arrow::Result<std::unique_ptr<PutWriter>> ObjectCache::BeginPut(
    const ObjectKey& key, std::shared_ptr<arrow::Schema> schema, PutOptions options) {
  Index* index = entries_->index();
  auto refuse = [&](arrow::Status st) {
    ++put_failures_;
    return st;
  };
  // Taken before anything is read or received: an invalidation from now on wins.
  auto since = index->Snapshot();
  if (!since.ok()) return refuse(since.status());
  std::optional<PatchPlan> patch;
  if (options.patch) {
    auto plan = PlanPatch(entries_, key.ToString(), *schema, options.if_version);
    if (!plan.ok()) return refuse(plan.status());
    patch = *plan;
    options.if_version = plan->over_version;
  } else if (options.if_version) {
    auto latest = index->Get(key.ToString(), std::nullopt);
    if (!latest.ok()) return refuse(latest.status());
    const uint64_t current = *latest ? (*latest)->version : 0;
    if (current != *options.if_version) {
      return refuse(arrow::Status::AlreadyExists("version conflict: '", key.ToString(),
                                                 "' is at version ", current, ", not ",
                                                 *options.if_version));
    }
  }
  CommitRequest request;
  request.if_version = options.if_version;
  request.depends_on = std::move(options.depends_on);
  request.tags = std::move(options.tags);
  request.replaces = true;
  request.keep_versions = options_.keep_versions;
  if (patch) {
    request.if_blob = patch->over_blob;
    auto keep = [](std::vector<std::string>* own, const std::vector<std::string>& inherited) {
      for (const auto& link : inherited) {
        if (std::find(own->begin(), own->end(), link) == own->end()) own->push_back(link);
      }
    };
    keep(&request.depends_on, patch->depends_on);
    keep(&request.tags, patch->tags);
    // The chain of the new version -- base_version..over_version+1 -- stays whole.
    request.keep_versions = std::max<int64_t>(
        request.keep_versions, static_cast<int64_t>(patch->over_version + 2 - patch->base_version));
  }
  request.since = *since;
  auto entry = entries_->NewWriter(key.ToString(), options_.max_object_bytes,
                                   "max_object_bytes; nothing was stored");
  if (!entry.ok()) return refuse(entry.status());
  auto put = std::make_unique<Put>(this, std::move(*entry), std::move(request), std::move(schema),
                                   options.cost_ms, patch ? patch->base_version : 0);
  ARROW_RETURN_NOT_OK(put->Start());
  return put;
}

arrow::Result<std::optional<OpenEntry>> ObjectCache::Get(const ObjectKey& key,
                                                         std::optional<uint64_t> version) {
  ++gets_;
  ARROW_ASSIGN_OR_RAISE(auto entry, entries_->Open(key.ToString(), version, /*promote=*/true));
  ++(entry ? hits_ : misses_);
  if (entry) evictor_->CountRead(key.ToString());
  return entry;
}

arrow::Result<std::optional<ObjectRead>> ObjectCache::Read(const ObjectKey& key,
                                                            std::optional<uint64_t> version,
                                                            std::optional<uint64_t> since) {
  ARROW_ASSIGN_OR_RAISE(auto last, Get(key, version));
  if (!last) return std::nullopt;
  return Complete(std::move(*last), since, /*promote=*/true);
}

arrow::Result<ObjectRead> ObjectCache::Parts(OpenEntry last) {
  return Complete(std::move(last), std::nullopt, /*promote=*/false);
}

arrow::Result<ObjectRead> ObjectCache::Complete(OpenEntry last, std::optional<uint64_t> since,
                                                bool promote) {
  ObjectRead read;
  const EntryMeta meta = last.meta;
  uint64_t first = meta.first_needed();
  if (since && *since >= meta.first_needed() && *since < meta.version) {
    read.since = *since;
    first = *since + 1;
  }
  for (uint64_t v = first; v < meta.version; ++v) {
    ARROW_ASSIGN_OR_RAISE(auto part, entries_->Open(meta.key, v, promote));
    if (!part) {
      return arrow::Status::KeyError("version ", meta.version, " of '", meta.key,
                                     "' is a patch of version ", meta.base_version,
                                     ", and version ", v,
                                     " of its chain cannot be read (removed, evicted or "
                                     "taken out of service)");
    }
    read.parts.push_back(std::move(*part));
  }
  read.parts.push_back(std::move(last));
  return read;
}

arrow::Result<std::optional<OpenEntry>> ObjectCache::Peek(const ObjectKey& key,
                                                          std::optional<uint64_t> version) {
  return entries_->Open(key.ToString(), version, /*promote=*/false);
}

arrow::Result<std::optional<OpenEntry>> ObjectCache::Peek(EntryMeta listed) {
  return entries_->OpenListed(std::move(listed));
}

arrow::Result<std::vector<EntryMeta>> ObjectCache::List(const std::string& prefix) {
  ARROW_ASSIGN_OR_RAISE(auto all, entries_->index()->ListLatest(prefix));
  std::vector<EntryMeta> out;
  for (auto& item : all) {
    if (!IsQueryKey(item.latest.key)) out.push_back(std::move(item.latest));
  }
  return out;
}

arrow::Result<uint64_t> ObjectCache::LatestVersion(const ObjectKey& key) {
  ARROW_ASSIGN_OR_RAISE(auto latest, entries_->index()->Get(key.ToString(), std::nullopt));
  return latest ? latest->version : 0;
}

arrow::Result<int64_t> ObjectCache::Delete(const ObjectKey& key) {
  // Bumping the key: a fill or put computed from it must not publish after it is gone.
  ARROW_ASSIGN_OR_RAISE(auto removed,
                        entries_->Remove(RemoveRequest(key.ToString(), /*bump_key=*/true)));
  return static_cast<int64_t>(removed.size());
}

arrow::Result<std::vector<std::string>> ObjectCache::DeletePrefix(const std::string& prefix,
                                                                  int64_t* versions) {
  ARROW_ASSIGN_OR_RAISE(auto keys, entries_->index()->KeysUnder(prefix));
  std::vector<std::string> deleted;
  for (const auto& text : keys) {
    ARROW_ASSIGN_OR_RAISE(auto key, ObjectKey::Parse(text));
    ARROW_ASSIGN_OR_RAISE(int64_t n, Delete(key));
    if (n > 0) deleted.push_back(text);
    if (versions) *versions += n;
  }
  return deleted;
}

void ObjectCache::RestoreCounters(const ObjectStats& saved) {
  puts_ += saved.puts;
  put_failures_ += saved.put_failures;
  gets_ += saved.gets;
  hits_ += saved.hits;
  misses_ += saved.misses;
  not_modified_ += saved.not_modified;
}

ObjectStats ObjectCache::Stats() const {
  return ObjectStats{puts_, put_failures_, gets_, hits_, misses_, not_modified_};
}

}  // namespace quiver
