#include "server/flame_adapter.h"

#include <arrow/buffer.h>
#include <arrow/io/interfaces.h>
#include <arrow/ipc/reader.h>
#include <arrow/record_batch.h>
#include <arrow/util/byte_size.h>
#include <spdlog/spdlog.h>

#include "cache/committer.h"
#include "common/rejection.h"
#include "server/entry_stream.h"

namespace quiver {

namespace flight = arrow::flight;

namespace {

// A patch that lost a compare-and-set race to a concurrent put or patch is tried again
// (Flame serializes writers of a key; each round of a race has a winner, so this ends).
constexpr int kPatchAttempts = 32;

arrow::Status CheckFlameSchema(const arrow::Schema& schema) {
  if (flame::IsNativeTable(schema) || flame::IsOpaqueSchema(schema)) return arrow::Status::OK();
  return arrow::Status::Invalid(
      "a Flame object is a table whose schema metadata has flame.cache.format=arrow-table-v1, "
      "or rows of (version: uint64, data: binary); got ",
      schema.ToString());
}

std::unique_ptr<flight::FlightDataStream> RowStream(
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches) {
  auto reader = arrow::RecordBatchReader::Make(std::move(batches), flame::ResponseSchema());
  return std::make_unique<flight::RecordBatchStream>(*reader);
}

arrow::Result<std::vector<std::shared_ptr<arrow::RecordBatch>>> ReadPart(const OpenEntry& part) {
  ARROW_ASSIGN_OR_RAISE(int64_t size, part.file->GetSize());
  ARROW_ASSIGN_OR_RAISE(auto input, arrow::io::RandomAccessFile::GetStream(part.file, 0, size));
  ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchStreamReader::Open(input));
  return reader->ToRecordBatches();
}

// A tenant's Flame app is its tenant (flame_adapter.h).
arrow::Status CheckApp(const TenantScope& scope, const flame::FlameKey& key) {
  if (!scope.scoped()) return arrow::Status::OK();
  ARROW_ASSIGN_OR_RAISE(auto app, flame::ToQuiverSegment(key.app));
  return scope.RequireOwnSegment(app, "Flame app");
}

}  // namespace

arrow::Result<EntryMeta> FlameAdapter::Store(const ObjectKey& key, bool patch,
                                             flight::FlightMessageReader* reader) {
  ARROW_ASSIGN_OR_RAISE(auto schema, reader->GetSchema());
  ARROW_RETURN_NOT_OK(CheckFlameSchema(*schema));
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  std::unique_ptr<PutWriter> put;
  if (!patch) {  // streamed straight into the store: uploads may be large
    ARROW_ASSIGN_OR_RAISE(put, cache_->BeginPut(key, schema));
  }
  int64_t received = 0;
  int64_t buffered = 0;
  while (true) {
    ARROW_ASSIGN_OR_RAISE(auto chunk, reader->Next());
    if (!chunk.data && !chunk.app_metadata) break;
    if (!chunk.data) continue;
    ++received;
    if (put) {
      ARROW_RETURN_NOT_OK(put->Write(*chunk.data));
    } else {
      // Kept for a retry, so bounded here: the store's own limit applies only when written.
      buffered += arrow::util::TotalBufferSize(*chunk.data);
      if (buffered > cache_->max_object_bytes()) {
        return Reject(arrow::Status::CapacityError("resource exhausted: the patch of '",
                                                   key.ToString(), "' exceeds max_object_bytes (",
                                                   cache_->max_object_bytes(),
                                                   " bytes); nothing was stored"),
                      RejectionKind::kTooLarge, "max_object_bytes", cache_->max_object_bytes());
      }
      batches.push_back(std::move(chunk.data));
    }
  }
  if (received == 0) return arrow::Status::Invalid("no data received");
  if (put) return put->Commit();
  PutOptions options;
  options.patch = true;
  for (int attempt = 1;; ++attempt) {
    ARROW_ASSIGN_OR_RAISE(put, cache_->BeginPut(key, schema, options));
    for (const auto& batch : batches) ARROW_RETURN_NOT_OK(put->Write(*batch));
    auto meta = put->Commit();
    if (meta.ok() || attempt == kPatchAttempts ||
        RefusalOf(meta.status()) != Refusal::kVersionConflict) {
      return meta;
    }
  }
}

arrow::Status FlameAdapter::Put(const flight::ServerCallContext& context,
                                flight::FlightMessageReader* reader,
                                flight::FlightMetadataWriter* writer,
                                const TenantScope& scope) {
  const auto& descriptor = reader->descriptor();
  const bool patch = flame::IsFlamePatch(descriptor);
  const std::string text = patch ? descriptor.cmd.substr(std::string(flame::kPatchPrefix).size())
                                 : descriptor.path[0];
  ARROW_ASSIGN_OR_RAISE(auto fkey, flame::ParseFlameKey(text));
  ARROW_RETURN_NOT_OK(CheckApp(scope, fkey));
  if (fkey.all_sessions()) {
    return arrow::Status::Invalid("cannot put to '", text, "': '*' is for deletes only");
  }
  if (patch && !fkey.object) {
    return arrow::Status::Invalid("PATCH needs a full key '<app>/<ssn>/<uuid>', got '", text,
                                  "'");
  }
  if (!fkey.object) fkey.object = flame::NewObjectId();
  ARROW_ASSIGN_OR_RAISE(auto key, flame::ToQuiverKey(fkey));
  auto meta = Store(key, patch, reader);
  if (!meta.ok()) {
    if (context.is_cancelled()) {
      return arrow::Status::Cancelled("Flame ", patch ? "PATCH" : "put", " '", fkey.ToString(),
                                      "': client disconnected; nothing was stored");
    }
    return arrow::Status(meta.status().code(),
                         std::string("Flame ") + (patch ? "PATCH" : "put") + " '" +
                             fkey.ToString() + "': " + meta.status().message(),
                         meta.status().detail());
  }
  spdlog::info("flame {} {}@{}: {} rows", patch ? "patch" : "put", key.ToString(), meta->version,
               meta->rows);
  return writer->WriteMetadata(*arrow::Buffer::FromString(
      flame::EncodeObjectRef(endpoint_text_, fkey.ToString(), meta->version)));
}

arrow::Result<std::unique_ptr<flight::FlightDataStream>> FlameAdapter::Get(
    const std::string& text, const TenantScope& scope) {
  ARROW_ASSIGN_OR_RAISE(auto ticket, flame::ParseFlameTicket(text));
  ARROW_RETURN_NOT_OK(CheckApp(scope, ticket.key));
  ARROW_ASSIGN_OR_RAISE(auto key, flame::ToQuiverKey(ticket.key));
  std::optional<uint64_t> since;
  if (ticket.client_version != 0) since = ticket.client_version;
  ARROW_ASSIGN_OR_RAISE(auto read, cache_->Read(key, std::nullopt, since));
  if (!read) return arrow::Status::KeyError("object <", ticket.key.ToString(), "> not found");
  const uint64_t version = read->meta().version;
  if (ticket.client_version != 0 && ticket.client_version == version) {
    cache_->CountNotModified();
    return RowStream({});  // Flame's "not modified": no rows
  }
  ARROW_ASSIGN_OR_RAISE(auto parts, OpenParts(*read));
  const auto stored_schema = parts.front()->schema();
  if (flame::IsOpaqueSchema(*stored_schema)) return OpaqueRows(*read);
  // A table is always sent whole (Flame's way), with the stored version in its metadata.
  if (read->since != 0) {
    ARROW_ASSIGN_OR_RAISE(read, cache_->Read(key, version, std::nullopt));
    if (!read) return arrow::Status::KeyError("object <", ticket.key.ToString(), "> not found");
    ARROW_ASSIGN_OR_RAISE(parts, OpenParts(*read));
  }
  return std::make_unique<EntryStream>(std::move(parts), "",
                                       flame::AsNativeTable(*stored_schema, version));
}

arrow::Result<std::unique_ptr<flight::FlightDataStream>> FlameAdapter::OpaqueRows(
    const ObjectRead& read) {
  std::vector<flame::ResponseRow> rows;
  for (const auto& part : read.parts) {
    ARROW_ASSIGN_OR_RAISE(auto batches, ReadPart(part));
    ARROW_ASSIGN_OR_RAISE(auto bytes, flame::OpaqueBytes(batches));
    const bool base = read.since == 0 && rows.empty();
    rows.push_back(flame::ResponseRow{part.meta.version, base, std::move(bytes)});
  }
  ARROW_ASSIGN_OR_RAISE(auto batch, flame::ResponseBatch(rows));
  return RowStream({std::move(batch)});
}

arrow::Result<std::unique_ptr<flight::FlightInfo>> FlameAdapter::Info(
    const flight::FlightDescriptor& descriptor, const TenantScope& scope) {
  const std::string& text = descriptor.path[0];
  ARROW_ASSIGN_OR_RAISE(auto fkey, flame::ParseFlameKey(text));
  ARROW_RETURN_NOT_OK(CheckApp(scope, fkey));
  // Like Flame: where to read the object, whether or not it is stored yet (a client that
  // wrote it to shared storage asks before the server has read it).
  std::shared_ptr<arrow::Schema> schema = arrow::schema({});
  if (fkey.object) {
    ARROW_ASSIGN_OR_RAISE(auto key, flame::ToQuiverKey(fkey));
    ARROW_ASSIGN_OR_RAISE(auto entry, cache_->Peek(key, std::nullopt));
    if (entry) {
      ARROW_ASSIGN_OR_RAISE(auto stored, StoredStream::Open(entry->file));
      if (!flame::IsOpaqueSchema(*stored->schema())) {
        schema = flame::AsNativeTable(*stored->schema(), entry->meta.version);
      }
    }
  }
  flight::FlightEndpoint endpoint;
  endpoint.ticket.ticket = fkey.ToString() + ":0";
  endpoint.locations.push_back(endpoint_);
  ARROW_ASSIGN_OR_RAISE(auto info,
                        flight::FlightInfo::Make(*schema, flight::FlightDescriptor::Path({text}),
                                                 {endpoint}, -1, -1, /*ordered=*/false));
  return std::make_unique<flight::FlightInfo>(std::move(info));
}

arrow::Result<std::string> FlameAdapter::Delete(const std::string& body,
                                                const TenantScope& scope) {
  ARROW_ASSIGN_OR_RAISE(auto fkey, flame::ParseFlameKey(body));
  ARROW_RETURN_NOT_OK(CheckApp(scope, fkey));
  if (fkey.object) {
    ARROW_ASSIGN_OR_RAISE(auto key, flame::ToQuiverKey(fkey));
    ARROW_ASSIGN_OR_RAISE(int64_t versions, cache_->Delete(key));
    spdlog::info("flame delete {}: {} versions", key.ToString(), versions);
    return "OK";
  }
  // Flame's prefixes match objects only: app/session/<object>, never a Quiver key app/session.
  ARROW_ASSIGN_OR_RAISE(auto prefix, flame::ToQuiverSegment(fkey.app));
  if (!fkey.all_sessions()) {
    ARROW_ASSIGN_OR_RAISE(auto session, flame::ToQuiverSegment(fkey.session));
    prefix += "/" + session;
  }
  ARROW_ASSIGN_OR_RAISE(auto listed, cache_->List(prefix + "/"));
  int64_t keys = 0;
  for (const auto& meta : listed) {
    ARROW_ASSIGN_OR_RAISE(auto key, ObjectKey::Parse(meta.key));
    if (key.segments().size() != 3) continue;
    ARROW_RETURN_NOT_OK(cache_->Delete(key).status());
    ++keys;
  }
  spdlog::info("flame delete {}: {} keys", body, keys);
  return "OK";
}

}  // namespace quiver
