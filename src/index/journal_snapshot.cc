#include "index/journal_snapshot.h"

#include <unistd.h>

#include <arrow/ipc/reader.h>
#include <arrow/util/key_value_metadata.h>
#include <fmt/format.h>
#include <xxhash.h>

#include "format/checksum.h"

namespace quiver {

namespace {

constexpr int64_t kSnapshotBatchRows = 64 * 1024;
constexpr const char* kFormatKey = "quiver.index.format";
constexpr const char* kGenerationKey = "quiver.index.generation";
constexpr const char* kSeqKey = "quiver.index.seq";

// Format 1: the columns up to "tags"; format 2 adds "base_version"; format 3 (written now)
// adds "tenant" (EntryMeta::tenant).
constexpr int kSnapshotFormat = 3;
std::shared_ptr<arrow::Schema> SnapshotSchema(uint64_t generation, uint64_t seq,
                                              int format = kSnapshotFormat) {
  auto list = arrow::list(arrow::field("item", arrow::utf8(), false));
  auto fields = arrow::FieldVector(
      {arrow::field("key", arrow::utf8(), false), arrow::field("version", arrow::uint64(), false),
       arrow::field("blob", arrow::utf8(), false), arrow::field("key_id", arrow::utf8(), false),
       arrow::field("manifest", arrow::utf8(), false), arrow::field("node", arrow::utf8(), false),
       arrow::field("bytes", arrow::int64(), false), arrow::field("rows", arrow::int64(), false),
       arrow::field("batches", arrow::int64(), false),
       arrow::field("schema_fingerprint", arrow::utf8(), false),
       arrow::field("checksum", arrow::utf8(), false),
       arrow::field("created_ms", arrow::int64(), false),
       arrow::field("source", arrow::utf8(), false), arrow::field("query", arrow::utf8(), false),
       arrow::field("expires_ms", arrow::int64(), false),
       arrow::field("cost_ms", arrow::int64(), false), arrow::field("depends_on", list, false),
       arrow::field("tags", list, false)});
  if (format >= 2) fields.push_back(arrow::field("base_version", arrow::uint64(), false));
  if (format >= 3) fields.push_back(arrow::field("tenant", arrow::utf8(), false));
  return arrow::schema(
      std::move(fields),
      arrow::key_value_metadata({kFormatKey, kGenerationKey, kSeqKey},
                                {std::to_string(format), std::to_string(generation),
                                 std::to_string(seq)}));
}

arrow::Status AppendList(arrow::ListBuilder* list, const std::vector<std::string>& v) {
  ARROW_RETURN_NOT_OK(list->Append());
  auto* values = static_cast<arrow::StringBuilder*>(list->value_builder());
  for (const auto& s : v) ARROW_RETURN_NOT_OK(values->Append(s));
  return arrow::Status::OK();
}


template <typename ArrayType>
arrow::Result<const ArrayType*> Column(const arrow::RecordBatch& batch, int i,
                                       const std::shared_ptr<arrow::Schema>& expected) {
  const auto& field = expected->field(i);
  auto column = batch.column(i);
  if (!batch.schema()->field(i)->type()->Equals(field->type()) || column->null_count() > 0) {
    return arrow::Status::Invalid("column '", field->name(), "' is not a non-null ",
                                  field->type()->ToString());
  }
  return static_cast<const ArrayType*>(column.get());
}

// The strings of `list`'s row `row`, into `out` (its buffers reused).
void ListInto(const arrow::ListArray& list, int64_t row, std::vector<std::string>* out) {
  out->clear();
  const auto& values = static_cast<const arrow::StringArray&>(*list.values());
  for (int64_t i = list.value_offset(row); i < list.value_offset(row + 1); ++i) {
    out->emplace_back(values.GetView(i));
  }
}

// A snapshot's reader and the schema its batches must have, once its checksum (`sum`),
// format and metadata are checked; the sequence number of its last change in *seq.
struct OpenedSnapshot {
  std::shared_ptr<arrow::ipc::RecordBatchFileReader> reader;
  std::shared_ptr<arrow::Schema> expected;
  int format = kSnapshotFormat;
};

arrow::Result<OpenedSnapshot> OpenSnapshot(const std::string& path, uint64_t generation,
                                           uint64_t sum, uint64_t* seq) {
  ARROW_ASSIGN_OR_RAISE(auto file, arrow::io::MemoryMappedFile::Open(path, arrow::io::FileMode::READ));
  ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
  ARROW_ASSIGN_OR_RAISE(auto whole, file->ReadAt(0, size));
  const uint64_t actual = XXH3_64bits(whole->data(), static_cast<size_t>(whole->size()));
  if (actual != sum) {
    return arrow::Status::Invalid("its checksum is ", fmt::format("{:016x}", actual),
                                  ", its name says ", fmt::format("{:016x}", sum));
  }
  ARROW_ASSIGN_OR_RAISE(auto reader, arrow::ipc::RecordBatchFileReader::Open(file));
  auto metadata = reader->schema()->metadata();
  const std::string format_text = metadata ? metadata->Get(kFormatKey).ValueOr("") : "";
  if (format_text != "1" && format_text != "2" && format_text != "3") {
    return arrow::Status::Invalid("unknown snapshot format");
  }
  const int format = format_text[0] - '0';
  uint64_t meta_generation = 0;
  if (!ParseJournalNumber(metadata->Get(kGenerationKey).ValueOr(""), &meta_generation) ||
      meta_generation != generation || !ParseJournalNumber(metadata->Get(kSeqKey).ValueOr(""), seq)) {
    return arrow::Status::Invalid("its metadata does not match its name");
  }
  auto expected = SnapshotSchema(generation, *seq, format);
  if (!reader->schema()->Equals(*expected, /*check_metadata=*/false)) {
    return arrow::Status::Invalid("unexpected columns: ", reader->schema()->ToString());
  }
  return OpenedSnapshot{reader, expected, format};
}

// The rows of one of its batches, packed, appended to *out (which they must continue in key
// then version order).
arrow::Status AppendRows(const arrow::RecordBatch& batch, const OpenedSnapshot& snap,
                         std::vector<RecoveredEntry>* out) {
  const auto& expected = snap.expected;
  const int format = snap.format;
  // The file's checksum vouches for its bytes; this checks what the columns claim.
  ARROW_RETURN_NOT_OK(batch.Validate());
  using S = arrow::StringArray;
  using I = arrow::Int64Array;
  ARROW_ASSIGN_OR_RAISE(auto key, Column<S>(batch, 0, expected));
  ARROW_ASSIGN_OR_RAISE(auto version, Column<arrow::UInt64Array>(batch, 1, expected));
  ARROW_ASSIGN_OR_RAISE(auto blob, Column<S>(batch, 2, expected));
  ARROW_ASSIGN_OR_RAISE(auto key_id, Column<S>(batch, 3, expected));
  ARROW_ASSIGN_OR_RAISE(auto manifest, Column<S>(batch, 4, expected));
  ARROW_ASSIGN_OR_RAISE(auto node, Column<S>(batch, 5, expected));
  ARROW_ASSIGN_OR_RAISE(auto bytes, Column<I>(batch, 6, expected));
  ARROW_ASSIGN_OR_RAISE(auto rows, Column<I>(batch, 7, expected));
  ARROW_ASSIGN_OR_RAISE(auto batches, Column<I>(batch, 8, expected));
  ARROW_ASSIGN_OR_RAISE(auto fingerprint, Column<S>(batch, 9, expected));
  ARROW_ASSIGN_OR_RAISE(auto checksum, Column<S>(batch, 10, expected));
  ARROW_ASSIGN_OR_RAISE(auto created, Column<I>(batch, 11, expected));
  ARROW_ASSIGN_OR_RAISE(auto source, Column<S>(batch, 12, expected));
  ARROW_ASSIGN_OR_RAISE(auto query, Column<S>(batch, 13, expected));
  ARROW_ASSIGN_OR_RAISE(auto expires, Column<I>(batch, 14, expected));
  ARROW_ASSIGN_OR_RAISE(auto cost, Column<I>(batch, 15, expected));
  ARROW_ASSIGN_OR_RAISE(auto depends, Column<arrow::ListArray>(batch, 16, expected));
  ARROW_ASSIGN_OR_RAISE(auto tags, Column<arrow::ListArray>(batch, 17, expected));
  const arrow::UInt64Array* base_version = nullptr;
  if (format >= 2) {
    ARROW_ASSIGN_OR_RAISE(base_version, Column<arrow::UInt64Array>(batch, 18, expected));
  }
  const arrow::StringArray* tenant = nullptr;
  if (format >= 3) {
    ARROW_ASSIGN_OR_RAISE(tenant, Column<S>(batch, 19, expected));
  }
  // One EntryMeta for every row (its strings keep their buffers), packed at once.
  EntryMeta e;
  for (int64_t r = 0; r < batch.num_rows(); ++r) {
    e.key = key->GetView(r);
    e.version = version->Value(r);
    e.blob = blob->GetView(r);
    e.key_id = key_id->GetView(r);
    e.manifest = manifest->GetView(r);
    e.node = node->GetView(r);
    e.bytes = bytes->Value(r);
    e.rows = rows->Value(r);
    e.batches = batches->Value(r);
    e.schema_fingerprint = fingerprint->GetView(r);
    e.checksum = checksum->GetView(r);
    e.created_ms = created->Value(r);
    e.source = source->GetView(r);
    e.query = query->GetView(r);
    e.expires_ms = expires->Value(r);
    e.cost_ms = cost->Value(r);
    ListInto(*depends, r, &e.depends_on);
    ListInto(*tags, r, &e.tags);
    e.base_version = base_version ? base_version->Value(r) : 0;
    if (tenant) e.tenant = tenant->GetView(r);
    // Rows are written by key, then version; anything else is not a snapshot of ours.
    if (!out->empty()) {
      const auto& last = out->back();
      const int order = last.key.compare(e.key);
      if (order > 0 || (order == 0 && last.packed.version() >= e.version)) {
        return arrow::Status::Invalid("rows out of order at '", e.key, "'@", e.version);
      }
    }
    out->push_back({e.key, PackedEntry::Pack(e)});
  }
  return arrow::Status::OK();
}

}  // namespace

arrow::Status ReadSnapshot(const std::string& path, uint64_t generation, uint64_t sum,
                           uint64_t* seq, std::vector<RecoveredEntry>* out) {
  ARROW_ASSIGN_OR_RAISE(auto snap, OpenSnapshot(path, generation, sum, seq));
  for (int b = 0; b < snap.reader->num_record_batches(); ++b) {
    ARROW_ASSIGN_OR_RAISE(auto batch, snap.reader->ReadRecordBatch(b));
    ARROW_RETURN_NOT_OK(AppendRows(*batch, snap, out));
  }
  return arrow::Status::OK();
}

// snapshot-<20 digits>-<16 hex>.arrow
bool ParseSnapshotName(const std::string& name, uint64_t* generation, uint64_t* sum) {
  if (name.size() != 9 + 20 + 1 + 16 + 6 || name.compare(0, 9, "snapshot-") != 0 ||
      name[29] != '-' || name.compare(46, 6, ".arrow") != 0) {
    return false;
  }
  return ParseJournalNumber(std::string_view(name).substr(9, 20), generation) &&
         ParseJournalNumber(std::string_view(name).substr(30, 16), sum, 16);
}


arrow::Result<std::unique_ptr<SnapshotFileWriter>> SnapshotFileWriter::Open(std::string dir,
                                                                         uint64_t generation,
                                                                         uint64_t seq) {
  std::unique_ptr<SnapshotFileWriter> w(new SnapshotFileWriter(std::move(dir), generation, seq));
  ARROW_ASSIGN_OR_RAISE(w->file_, arrow::io::FileOutputStream::Open(w->temp_));
  w->counted_ = std::make_unique<ChecksummingOutputStream>(w->file_.get());
  ARROW_ASSIGN_OR_RAISE(w->writer_, arrow::ipc::MakeFileWriter(w->counted_.get(), w->schema_));
  return w;
}

SnapshotFileWriter::SnapshotFileWriter(std::string dir, uint64_t generation, uint64_t seq)
    : dir_(std::move(dir)),
      generation_(generation),
      temp_(fmt::format("{}/snapshot-{:020}.part", dir_, generation)),
      schema_(SnapshotSchema(generation, seq)),
      depends_(arrow::default_memory_pool(), std::make_shared<arrow::StringBuilder>()),
      tags_(arrow::default_memory_pool(), std::make_shared<arrow::StringBuilder>()) {}

SnapshotFileWriter::~SnapshotFileWriter() {
  if (!finished_) ::unlink(temp_.c_str());
}

std::string SnapshotFileWriter::final_name() const {
  return fmt::format("snapshot-{:020}-{}.arrow", generation_, counted_->HexDigest());
}

arrow::Status SnapshotFileWriter::Add(const EntryMeta& e) {
  ARROW_RETURN_NOT_OK(key_.Append(e.key));
  ARROW_RETURN_NOT_OK(version_.Append(e.version));
  ARROW_RETURN_NOT_OK(blob_.Append(e.blob));
  ARROW_RETURN_NOT_OK(key_id_.Append(e.key_id));
  ARROW_RETURN_NOT_OK(manifest_.Append(e.manifest));
  ARROW_RETURN_NOT_OK(node_.Append(e.node));
  ARROW_RETURN_NOT_OK(bytes_.Append(e.bytes));
  ARROW_RETURN_NOT_OK(rows_.Append(e.rows));
  ARROW_RETURN_NOT_OK(batches_.Append(e.batches));
  ARROW_RETURN_NOT_OK(fingerprint_.Append(e.schema_fingerprint));
  ARROW_RETURN_NOT_OK(checksum_.Append(e.checksum));
  ARROW_RETURN_NOT_OK(created_.Append(e.created_ms));
  ARROW_RETURN_NOT_OK(source_.Append(e.source));
  ARROW_RETURN_NOT_OK(query_.Append(e.query));
  ARROW_RETURN_NOT_OK(expires_.Append(e.expires_ms));
  ARROW_RETURN_NOT_OK(cost_.Append(e.cost_ms));
  ARROW_RETURN_NOT_OK(AppendList(&depends_, e.depends_on));
  ARROW_RETURN_NOT_OK(AppendList(&tags_, e.tags));
  ARROW_RETURN_NOT_OK(base_version_.Append(e.base_version));
  ARROW_RETURN_NOT_OK(tenant_.Append(e.tenant));
  ++rows_total_;
  if (++pending_ >= kSnapshotBatchRows) return WriteBatch();
  return arrow::Status::OK();
}

arrow::Status SnapshotFileWriter::Close() {
  ARROW_RETURN_NOT_OK(WriteBatch());
  ARROW_RETURN_NOT_OK(writer_->Close());
  ARROW_RETURN_NOT_OK(file_->Close());
  return arrow::Status::OK();
}

arrow::Status SnapshotFileWriter::WriteBatch() {
  if (pending_ == 0 && rows_total_ > 0) return arrow::Status::OK();
  std::vector<std::shared_ptr<arrow::Array>> columns(20);
  ARROW_RETURN_NOT_OK(key_.Finish(&columns[0]));
  ARROW_RETURN_NOT_OK(version_.Finish(&columns[1]));
  ARROW_RETURN_NOT_OK(blob_.Finish(&columns[2]));
  ARROW_RETURN_NOT_OK(key_id_.Finish(&columns[3]));
  ARROW_RETURN_NOT_OK(manifest_.Finish(&columns[4]));
  ARROW_RETURN_NOT_OK(node_.Finish(&columns[5]));
  ARROW_RETURN_NOT_OK(bytes_.Finish(&columns[6]));
  ARROW_RETURN_NOT_OK(rows_.Finish(&columns[7]));
  ARROW_RETURN_NOT_OK(batches_.Finish(&columns[8]));
  ARROW_RETURN_NOT_OK(fingerprint_.Finish(&columns[9]));
  ARROW_RETURN_NOT_OK(checksum_.Finish(&columns[10]));
  ARROW_RETURN_NOT_OK(created_.Finish(&columns[11]));
  ARROW_RETURN_NOT_OK(source_.Finish(&columns[12]));
  ARROW_RETURN_NOT_OK(query_.Finish(&columns[13]));
  ARROW_RETURN_NOT_OK(expires_.Finish(&columns[14]));
  ARROW_RETURN_NOT_OK(cost_.Finish(&columns[15]));
  ARROW_RETURN_NOT_OK(depends_.Finish(&columns[16]));
  ARROW_RETURN_NOT_OK(tags_.Finish(&columns[17]));
  ARROW_RETURN_NOT_OK(base_version_.Finish(&columns[18]));
  ARROW_RETURN_NOT_OK(tenant_.Finish(&columns[19]));
  // ListBuilder::Finish types the list with a nullable item field; the schema's is not.
  for (int i : {16, 17}) {
    auto data = columns[i]->data()->Copy();
    data->type = schema_->field(i)->type();
    columns[i] = arrow::MakeArray(data);
  }
  auto batch = arrow::RecordBatch::Make(schema_, pending_, columns);
  pending_ = 0;
  return writer_->WriteRecordBatch(*batch);
}

}  // namespace quiver
