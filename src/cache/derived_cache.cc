#include "cache/derived_cache.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <vector>

#include <arrow/builder.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/util/key_value_metadata.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "cache/query_cache.h"
#include "common/key.h"

namespace quiver {

namespace {

using nlohmann::json;

// An encoded entry's rows: pieces of about this size.
constexpr int64_t kChunkBytes = int64_t{1} << 20;
constexpr const char* kEncodingMeta = "quiver.encoding";
constexpr const char* kContentTypeMeta = "quiver.content_type";

std::shared_ptr<arrow::Schema> EncodedSchema(Encoding encoding) {
  auto metadata = arrow::key_value_metadata(
      {kEncodingMeta, kContentTypeMeta},
      {std::string(EncodingName(encoding)), std::string(ContentType(encoding))});
  return arrow::schema({arrow::field("bytes", arrow::binary(), /*nullable=*/false)},
                       std::move(metadata));
}

// An OutputStream that hands what is written to an IPC writer as one-row batches of the
// encoded schema, each piece about kChunkBytes.
class ChunkingStream final : public arrow::io::OutputStream {
 public:
  ChunkingStream(arrow::ipc::RecordBatchWriter* writer, std::shared_ptr<arrow::Schema> schema,
                 std::function<void(int64_t)> on_batch)
      : writer_(writer), schema_(std::move(schema)), on_batch_(std::move(on_batch)) {}

  arrow::Status Write(const void* data, int64_t nbytes) override {
    const char* p = static_cast<const char*>(data);
    while (nbytes > 0) {
      const int64_t take = std::min(nbytes, kChunkBytes - static_cast<int64_t>(pending_.size()));
      pending_.append(p, static_cast<size_t>(take));
      p += take;
      nbytes -= take;
      position_ += take;
      if (static_cast<int64_t>(pending_.size()) >= kChunkBytes) ARROW_RETURN_NOT_OK(Emit());
    }
    return arrow::Status::OK();
  }
  arrow::Status Flush() override { return arrow::Status::OK(); }
  arrow::Status Close() override {
    if (closed_) return arrow::Status::OK();
    closed_ = true;
    // At least one piece (maybe empty), so the stream has a batch to carry metadata.
    return pending_.empty() && emitted_ ? arrow::Status::OK() : Emit();
  }
  bool closed() const override { return closed_; }
  arrow::Result<int64_t> Tell() const override { return position_; }

 private:
  arrow::Status Emit() {
    arrow::BinaryBuilder builder;
    ARROW_RETURN_NOT_OK(builder.Append(pending_));
    ARROW_ASSIGN_OR_RAISE(auto array, builder.Finish());
    pending_.clear();
    emitted_ = true;
    ARROW_RETURN_NOT_OK(writer_->WriteRecordBatch(*arrow::RecordBatch::Make(schema_, 1, {array})));
    on_batch_(1);
    return arrow::Status::OK();
  }

  arrow::ipc::RecordBatchWriter* writer_;
  std::shared_ptr<arrow::Schema> schema_;
  std::function<void(int64_t)> on_batch_;
  std::string pending_;
  int64_t position_ = 0;
  bool emitted_ = false;
  bool closed_ = false;
};

// Reads the stored IPC streams of `parts` one after the other as one table.
class PartsReader final : public arrow::RecordBatchReader {
 public:
  static arrow::Result<std::shared_ptr<PartsReader>> Open(std::vector<OpenEntry> parts) {
    auto reader = std::shared_ptr<PartsReader>(new PartsReader(std::move(parts)));
    ARROW_RETURN_NOT_OK(reader->OpenPart(0));
    reader->schema_ = reader->current_->schema();
    return reader;
  }
  std::shared_ptr<arrow::Schema> schema() const override { return schema_; }
  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    while (current_) {
      ARROW_RETURN_NOT_OK(current_->ReadNext(out));
      if (*out) {
        if (index_ > 0) {
          ARROW_ASSIGN_OR_RAISE(*out, (*out)->ReplaceSchema(schema_));
        }
        return arrow::Status::OK();
      }
      current_.reset();
      if (index_ + 1 < parts_.size()) ARROW_RETURN_NOT_OK(OpenPart(index_ + 1));
    }
    *out = nullptr;
    return arrow::Status::OK();
  }

 private:
  explicit PartsReader(std::vector<OpenEntry> parts) : parts_(std::move(parts)) {}
  arrow::Status OpenPart(size_t i) {
    index_ = i;
    const auto& file = parts_[i].file;
    ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
    // Its own stream over the file: other readers of the same entry keep their positions.
    ARROW_ASSIGN_OR_RAISE(auto stream, arrow::io::RandomAccessFile::GetStream(file, 0, size));
    ARROW_ASSIGN_OR_RAISE(current_, arrow::ipc::RecordBatchStreamReader::Open(stream));
    return arrow::Status::OK();
  }
  std::vector<OpenEntry> parts_;
  size_t index_ = 0;
  std::shared_ptr<arrow::RecordBatchReader> current_;
  std::shared_ptr<arrow::Schema> schema_;
};

int64_t MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

using WriterFactory = std::function<arrow::Result<std::shared_ptr<arrow::ipc::RecordBatchWriter>>(
    const std::shared_ptr<arrow::Schema>&)>;

// Decode `parts`, apply the view, encode: into the IPC writer `open` makes for the stored
// schema. `on_batch(rows)` counts each batch written.
arrow::Status RunDerivation(const std::vector<OpenEntry>& parts, const ViewSpec& view,
                            Encoding encoding, const WriterFactory& open,
                            const std::function<void(int64_t)>& on_batch) {
  ARROW_ASSIGN_OR_RAISE(auto source, PartsReader::Open(parts));
  ARROW_ASSIGN_OR_RAISE(auto viewed, ApplyView(source, view));
  if (encoding == Encoding::kArrowStream) {
    ARROW_ASSIGN_OR_RAISE(auto writer, open(viewed->schema()));
    bool any = false;
    while (true) {
      ARROW_ASSIGN_OR_RAISE(auto batch, viewed->Next());
      if (!batch) break;
      ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(*batch));
      on_batch(batch->num_rows());
      any = true;
    }
    if (!any) {  // an empty view still has one (empty) batch: it carries the response metadata
      ARROW_ASSIGN_OR_RAISE(auto empty, arrow::RecordBatch::MakeEmpty(viewed->schema()));
      ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(*empty));
      on_batch(0);
    }
    return writer->Close();
  }
  const auto schema = EncodedSchema(encoding);
  ARROW_ASSIGN_OR_RAISE(auto writer, open(schema));
  ChunkingStream chunks(writer.get(), schema, on_batch);
  ARROW_RETURN_NOT_OK(EncodeStream(viewed.get(), encoding, &chunks));
  ARROW_RETURN_NOT_OK(chunks.Close());
  return writer->Close();
}

}  // namespace

struct DerivedCache::Source {
  std::vector<OpenEntry> parts;  // oldest first; the last one is the version asked for
  const EntryMeta& meta() const { return parts.back().meta; }
};

arrow::Result<DerivedCache::Source> DerivedCache::OpenSource(const ViewRequest& request) {
  Source source;
  const std::string key = AsQueryKey(request.key);
  if (IsQueryKey(key)) {
    ARROW_ASSIGN_OR_RAISE(auto entry, entries_->Open(key, request.version, /*promote=*/false));
    if (!entry || entry->meta.expired(clock_->NowMillis())) {
      const std::string at =
          request.version ? " at version " + std::to_string(*request.version) : "";
      return arrow::Status::KeyError("no cached result '", key.substr(3), "'", at,
                                     " (expired, invalidated, or never cached)");
    }
    if (IsDerivedEntry(entry->meta)) {
      return arrow::Status::Invalid("'", key.substr(3), "' is a derived entry; views are of "
                                    "objects and query results");
    }
    source.parts.push_back(std::move(*entry));
    return source;
  }
  auto object = ObjectKey::Parse(key);
  if (!object.ok()) {
    return arrow::Status::Invalid("key '", request.key, "' is neither an object key nor a query "
                                  "result's 64 hex digits: ", object.status().message());
  }
  ARROW_ASSIGN_OR_RAISE(auto read, objects_->Read(*object, request.version));
  if (!read) {
    if (request.version) {
      return arrow::Status::KeyError("no version ", *request.version, " of object '", key,
                                     "' (deleted, never written, or no longer kept)");
    }
    return arrow::Status::KeyError("no object '", key, "'");
  }
  source.parts = std::move(read->parts);
  return source;
}

arrow::Result<std::vector<OpenEntry>> DerivedCache::OpenSourceParts(
    const std::string& key, std::optional<uint64_t> version) {
  ViewRequest request;
  request.key = key;
  request.version = version;
  ARROW_ASSIGN_OR_RAISE(auto source, OpenSource(request));
  return std::move(source.parts);
}

arrow::Result<ViewResult> DerivedCache::Serve(const ViewRequest& request) {
  if (request.view.empty() && request.encoding == Encoding::kArrowStream) {
    return arrow::Status::Invalid("a view with no columns, filter, sort, offset or limit in "
                                  "Arrow stream format is the entry itself: read it directly");
  }
  // Taken before the source is read: an invalidation from here on refuses the publish.
  ARROW_ASSIGN_OR_RAISE(auto since, entries_->index()->Snapshot());
  ARROW_ASSIGN_OR_RAISE(auto source, OpenSource(request));
  const EntryMeta& meta = source.meta();
  const std::string canonical =
      json{{"derived_from", meta.key},
           {"version", meta.version},
           {"created_ms", meta.created_ms},
           {"view", json::parse(request.view.CanonicalJson())},
           {"encoding", std::string(EncodingName(request.encoding))}}
          .dump();
  const std::string key = kQueryKeyPrefix + Sha256Hex(canonical);
  ARROW_ASSIGN_OR_RAISE(auto found, entries_->Open(key, std::nullopt, /*promote=*/true));
  if (found && IsDerivedEntry(found->meta) && !found->meta.expired(clock_->NowMillis())) {
    ++hits_;
    ViewResult result;
    result.derive_ms = found->meta.cost_ms;
    result.entry = std::move(*found);
    result.encoded = request.encoding != Encoding::kArrowStream;
    result.cached_hit = true;
    result.source = meta;
    result.encoding = request.encoding;
    return result;
  }
  // An expired (or otherwise unserved) entry under the key is replaced by compare-and-set.
  std::optional<EntryMeta> stale;
  if (found) {
    stale = found->meta;
  } else {
    ARROW_ASSIGN_OR_RAISE(stale, entries_->index()->Get(key, std::nullopt));
  }
  auto derived = Derive(request, source, key, canonical, stale, since);
  if (!derived.ok()) ++failures_;
  return derived;
}

arrow::Result<ViewResult> DerivedCache::Derive(const ViewRequest& request, const Source& source,
                                               const std::string& key,
                                               const std::string& canonical,
                                               const std::optional<EntryMeta>& stale,
                                               GenerationSnapshot since) {
  ++derived_;
  const auto start = std::chrono::steady_clock::now();
  const int64_t created_ms = clock_->NowMillis();
  ARROW_ASSIGN_OR_RAISE(auto entry, entries_->NewWriter(key, max_entry_bytes_, "max_entry_bytes"));
  WriterFactory open = [&](const std::shared_ptr<arrow::Schema>& schema)
      -> arrow::Result<std::shared_ptr<arrow::ipc::RecordBatchWriter>> {
    entry->SetSchema(*schema);
    return arrow::ipc::internal::OpenRecordBatchWriter(
        std::make_unique<EntryPayloadSink>(entry.get()), schema);
  };
  auto run = RunDerivation(source.parts, request.view, request.encoding, open,
                           [&](int64_t rows) { entry->CountBatch(rows); });
  if (!run.ok()) {
    entry->Abort();
    return run;
  }
  ARROW_ASSIGN_OR_RAISE(auto meta, entry->Finish());
  const int64_t derive_ms = MillisSince(start);
  meta.source = kDerivedSource;
  meta.query = canonical;
  meta.tenant = EntryTenant(source.meta());  // a view counts where its source does
  meta.cost_ms = derive_ms;
  meta.created_ms = created_ms;
  meta.expires_ms = source.meta().expires_ms;  // the source's remaining TTL
  CommitRequest commit;
  commit.if_version = stale ? stale->version : 0;
  commit.depends_on = {source.meta().key};
  commit.keep = {source.meta().key};  // evicting the source would leave this unreachable
  commit.since = since;
  commit.keep_versions = 1;
  auto committed = committer_->Commit(std::move(meta), commit);
  std::optional<OpenEntry> published;
  if (committed.ok()) {
    ++stored_;
    ARROW_ASSIGN_OR_RAISE(published, entries_->Open(key, committed->version, /*promote=*/true));
    // Making room for it may have evicted its own source: then nothing leads to it any more.
    ARROW_ASSIGN_OR_RAISE(auto still,
                          entries_->index()->Get(source.meta().key, source.meta().version));
    if (published && !still) return Unreachable(request, source, std::move(*published));
  } else if (RefusalOf(committed.status()) == Refusal::kVersionConflict) {
    // Another request derived and published the same view first: serve that.
    ARROW_ASSIGN_OR_RAISE(published, entries_->Open(key, std::nullopt, /*promote=*/true));
  }
  if (!published) {
    const std::string why = committed.ok() ? "removed as soon as it was stored"
                                           : committed.status().message();
    spdlog::info("view of {}@{} not cached: {}", source.meta().key, source.meta().version, why);
    return ServeUncached(request, source, why);
  }
  ViewResult result;
  result.entry = std::move(*published);
  result.encoded = request.encoding != Encoding::kArrowStream;
  result.derive_ms = derive_ms;
  result.source = source.meta();
  result.encoding = request.encoding;
  return result;
}

arrow::Result<ViewResult> DerivedCache::ServeUncached(const ViewRequest& request,
                                                      const Source& source, std::string why) {
  ++not_stored_;
  const auto start = std::chrono::steady_clock::now();
  ARROW_ASSIGN_OR_RAISE(auto sink, arrow::io::BufferOutputStream::Create());
  int64_t rows = 0;
  WriterFactory open = [&](const std::shared_ptr<arrow::Schema>& schema) {
    return arrow::ipc::MakeStreamWriter(sink, schema);
  };
  ARROW_RETURN_NOT_OK(RunDerivation(source.parts, request.view, request.encoding, open,
                                    [&](int64_t n) { rows += n; }));
  ARROW_ASSIGN_OR_RAISE(auto bytes, sink->Finish());
  ViewResult result;
  result.entry.meta.key = "";  // not an entry of the cache
  result.entry.meta.rows = rows;
  result.entry.meta.bytes = bytes->size();
  result.entry.meta.source = kDerivedSource;
  result.entry.file = std::make_shared<arrow::io::BufferReader>(bytes);
  result.encoded = request.encoding != Encoding::kArrowStream;
  result.derive_ms = MillisSince(start);
  result.source = source.meta();
  result.encoding = request.encoding;
  result.stored = false;
  result.not_stored = std::move(why);
  return result;
}

arrow::Result<ViewResult> DerivedCache::Unreachable(const ViewRequest& request,
                                                     const Source& source, OpenEntry entry) {
  ARROW_ASSIGN_OR_RAISE(int64_t size, entry.file->GetSize());
  ARROW_ASSIGN_OR_RAISE(auto bytes, entry.file->ReadAt(0, size));  // before its blob goes
  auto removed = entries_->Remove(RemoveRequest(entry.meta.key));
  if (!removed.ok()) {
    spdlog::warn("removing {} (its source is gone): {}", entry.meta.key,
                 removed.status().ToString());
  }
  --stored_;
  ++not_stored_;
  spdlog::info("view of {}@{} not cached: its source was evicted to make room for it",
               source.meta().key, source.meta().version);
  ViewResult result;
  result.entry.meta = entry.meta;
  result.entry.meta.key = "";  // no longer an entry of the cache
  result.entry.file = std::make_shared<arrow::io::BufferReader>(std::move(bytes));
  result.encoded = request.encoding != Encoding::kArrowStream;
  result.derive_ms = entry.meta.cost_ms;
  result.source = source.meta();
  result.encoding = request.encoding;
  result.stored = false;
  result.not_stored = "its source was evicted to make room for it";
  return result;
}

DerivedStats DerivedCache::Stats() const {
  return DerivedStats{hits_, derived_, stored_, not_stored_, failures_};
}

arrow::Status ForEachEncodedChunk(
    const OpenEntry& entry,
    const std::function<arrow::Status(std::shared_ptr<arrow::Buffer>)>& fn) {
  ARROW_ASSIGN_OR_RAISE(int64_t size, entry.file->GetSize());
  ARROW_ASSIGN_OR_RAISE(auto stream, arrow::io::RandomAccessFile::GetStream(entry.file, 0, size));
  ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchStreamReader::Open(stream));
  const auto& metadata = reader->schema()->metadata();
  if (reader->schema()->num_fields() != 1 || !metadata || !metadata->Contains(kEncodingMeta) ||
      reader->schema()->field(0)->type()->id() != arrow::Type::BINARY) {
    return arrow::Status::Invalid("entry '", entry.meta.key, "' holds no encoded bytes");
  }
  while (true) {
    ARROW_ASSIGN_OR_RAISE(auto batch, reader->Next());
    if (!batch) break;
    const auto& bytes = static_cast<const arrow::BinaryArray&>(*batch->column(0));
    for (int64_t i = 0; i < bytes.length(); ++i) {
      ARROW_RETURN_NOT_OK(fn(arrow::SliceBuffer(bytes.value_data(), bytes.value_offset(i),
                                                bytes.value_length(i))));
    }
  }
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::Buffer>> ReadEncodedBytes(const OpenEntry& entry) {
  std::vector<std::shared_ptr<arrow::Buffer>> pieces;
  int64_t total = 0;
  ARROW_RETURN_NOT_OK(ForEachEncodedChunk(entry, [&](std::shared_ptr<arrow::Buffer> piece) {
    total += piece->size();
    pieces.push_back(std::move(piece));
    return arrow::Status::OK();
  }));
  if (pieces.size() == 1) return pieces.front();
  ARROW_ASSIGN_OR_RAISE(auto out, arrow::AllocateBuffer(total));
  int64_t at = 0;
  for (const auto& piece : pieces) {
    std::memcpy(out->mutable_data() + at, piece->data(), static_cast<size_t>(piece->size()));
    at += piece->size();
  }
  return std::shared_ptr<arrow::Buffer>(std::move(out));
}

}  // namespace quiver
