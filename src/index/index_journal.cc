#include "index/index_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/util/key_value_metadata.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include "format/checksum.h"
#include "index/byte_codec.h"

namespace quiver {

namespace fs = std::filesystem;

namespace {

// --- record codec: little-endian fixed-width integers, length-prefixed strings ------------

constexpr char kLogMagic[8] = {'Q', 'V', 'R', 'J', 'R', 'N', 'L', '1'};
constexpr size_t kLogHeader = 8 + 8 + 8;  // magic, generation, seq of the snapshot before it
constexpr size_t kFrameHeader = 4 + 8;    // payload length, XXH3-64 of the payload
constexpr uint32_t kMaxRecord = 64u << 20;
constexpr int64_t kSnapshotBatchRows = 64 * 1024;
constexpr const char* kFormatKey = "quiver.index.format";
constexpr const char* kGenerationKey = "quiver.index.generation";
constexpr const char* kSeqKey = "quiver.index.seq";

enum RecordType : uint8_t { kPublish = 1, kDrop = 2, kSynced = 3 };

using codec::LoadU32;
using codec::LoadU64;
using codec::PutStr;
using codec::PutStrs;
using codec::PutU32;
using codec::PutU64;
using codec::Reader;

arrow::Status ErrnoStatus(const std::string& what) {
  return arrow::Status::IOError(what, ": ", std::strerror(errno));
}

arrow::Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open " + dir);
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoStatus("fsync " + dir);
  return arrow::Status::OK();
}

arrow::Status WriteFully(int fd, const std::string& bytes, const std::string& what) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write " + what);
    }
    done += static_cast<size_t>(n);
  }
  return arrow::Status::OK();
}

std::string LogName(uint64_t generation) { return fmt::format("log-{:020}", generation); }

template <typename T>
bool ParseNumber(std::string_view text, T* out, int base = 10) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, base);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

// snapshot-<20 digits>-<16 hex>.arrow
bool ParseSnapshotName(const std::string& name, uint64_t* generation, uint64_t* sum) {
  if (name.size() != 9 + 20 + 1 + 16 + 6 || name.compare(0, 9, "snapshot-") != 0 ||
      name[29] != '-' || name.compare(46, 6, ".arrow") != 0) {
    return false;
  }
  return ParseNumber(std::string_view(name).substr(9, 20), generation) &&
         ParseNumber(std::string_view(name).substr(30, 16), sum, 16);
}

bool ParseLogName(const std::string& name, uint64_t* generation) {
  return name.size() == 4 + 20 && name.compare(0, 4, "log-") == 0 &&
         ParseNumber(std::string_view(name).substr(4), generation);
}

// Format 1: the columns up to "tags"; format 2 (written now) adds "base_version".
std::shared_ptr<arrow::Schema> SnapshotSchema(uint64_t generation, uint64_t seq,
                                              int format = 2) {
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
  return arrow::schema(
      std::move(fields),
      arrow::key_value_metadata({kFormatKey, kGenerationKey, kSeqKey},
                                {std::to_string(format), std::to_string(generation),
                                 std::to_string(seq)}));
}

// Streams rows into a temporary Arrow IPC file, checksumming every byte on its way.
class SnapshotFileWriter final : public SnapshotWriter {
 public:
  SnapshotFileWriter(std::string dir, uint64_t generation, uint64_t seq)
      : dir_(std::move(dir)),
        generation_(generation),
        seq_(seq),
        temp_(fmt::format("{}/snapshot-{:020}.part", dir_, generation)),
        schema_(SnapshotSchema(generation, seq)),
        depends_(arrow::default_memory_pool(), std::make_shared<arrow::StringBuilder>()),
        tags_(arrow::default_memory_pool(), std::make_shared<arrow::StringBuilder>()) {}

  ~SnapshotFileWriter() override {
    if (!finished_) ::unlink(temp_.c_str());
  }

  arrow::Status Open() {
    ARROW_ASSIGN_OR_RAISE(file_, arrow::io::FileOutputStream::Open(temp_));
    counted_ = std::make_unique<ChecksummingOutputStream>(file_.get());
    ARROW_ASSIGN_OR_RAISE(writer_, arrow::ipc::MakeFileWriter(counted_.get(), schema_));
    return arrow::Status::OK();
  }

  arrow::Status Add(const EntryMeta& e) override {
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
    ++rows_total_;
    if (++pending_ >= kSnapshotBatchRows) return WriteBatch();
    return arrow::Status::OK();
  }

  arrow::Status Close() override {
    ARROW_RETURN_NOT_OK(WriteBatch());
    ARROW_RETURN_NOT_OK(writer_->Close());
    ARROW_RETURN_NOT_OK(file_->Close());
    return arrow::Status::OK();
  }

  int64_t rows() const override { return rows_total_; }
  uint64_t generation() const { return generation_; }
  const std::string& temp() const { return temp_; }
  std::string final_name() const {
    return fmt::format("snapshot-{:020}-{}.arrow", generation_, counted_->HexDigest());
  }
  void finished() { finished_ = true; }

 private:
  static arrow::Status AppendList(arrow::ListBuilder* list, const std::vector<std::string>& v) {
    ARROW_RETURN_NOT_OK(list->Append());
    auto* values = static_cast<arrow::StringBuilder*>(list->value_builder());
    for (const auto& s : v) ARROW_RETURN_NOT_OK(values->Append(s));
    return arrow::Status::OK();
  }

  arrow::Status WriteBatch() {
    if (pending_ == 0 && rows_total_ > 0) return arrow::Status::OK();
    std::vector<std::shared_ptr<arrow::Array>> columns(19);
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

  const std::string dir_;
  const uint64_t generation_;
  const uint64_t seq_;
  const std::string temp_;
  std::shared_ptr<arrow::Schema> schema_;
  std::shared_ptr<arrow::io::FileOutputStream> file_;
  std::unique_ptr<ChecksummingOutputStream> counted_;
  std::shared_ptr<arrow::ipc::RecordBatchWriter> writer_;
  arrow::StringBuilder key_, blob_, key_id_, manifest_, node_, fingerprint_, checksum_, source_,
      query_;
  arrow::UInt64Builder version_, base_version_;
  arrow::Int64Builder bytes_, rows_, batches_, created_, expires_, cost_;
  arrow::ListBuilder depends_, tags_;
  int64_t pending_ = 0;
  int64_t rows_total_ = 0;
  bool finished_ = false;
};

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

// Read snapshot `path`, checking its checksum (`sum`) and generation; its last record's seq
// in *seq.
arrow::Status ReadSnapshot(const std::string& path, uint64_t generation, uint64_t sum,
                           uint64_t* seq, std::vector<RecoveredEntry>* out) {
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
  if (format_text != "1" && format_text != "2") {
    return arrow::Status::Invalid("unknown snapshot format");
  }
  const int format = format_text == "1" ? 1 : 2;
  uint64_t meta_generation = 0;
  if (!ParseNumber(metadata->Get(kGenerationKey).ValueOr(""), &meta_generation) ||
      meta_generation != generation || !ParseNumber(metadata->Get(kSeqKey).ValueOr(""), seq)) {
    return arrow::Status::Invalid("its metadata does not match its name");
  }
  auto expected = SnapshotSchema(generation, *seq, format);
  if (!reader->schema()->Equals(*expected, /*check_metadata=*/false)) {
    return arrow::Status::Invalid("unexpected columns: ", reader->schema()->ToString());
  }
  for (int b = 0; b < reader->num_record_batches(); ++b) {
    ARROW_ASSIGN_OR_RAISE(auto batch, reader->ReadRecordBatch(b));
    // The file's checksum vouches for its bytes; this checks what the columns claim.
    ARROW_RETURN_NOT_OK(batch->Validate());
    using S = arrow::StringArray;
    using I = arrow::Int64Array;
    ARROW_ASSIGN_OR_RAISE(auto key, Column<S>(*batch, 0, expected));
    ARROW_ASSIGN_OR_RAISE(auto version, Column<arrow::UInt64Array>(*batch, 1, expected));
    ARROW_ASSIGN_OR_RAISE(auto blob, Column<S>(*batch, 2, expected));
    ARROW_ASSIGN_OR_RAISE(auto key_id, Column<S>(*batch, 3, expected));
    ARROW_ASSIGN_OR_RAISE(auto manifest, Column<S>(*batch, 4, expected));
    ARROW_ASSIGN_OR_RAISE(auto node, Column<S>(*batch, 5, expected));
    ARROW_ASSIGN_OR_RAISE(auto bytes, Column<I>(*batch, 6, expected));
    ARROW_ASSIGN_OR_RAISE(auto rows, Column<I>(*batch, 7, expected));
    ARROW_ASSIGN_OR_RAISE(auto batches, Column<I>(*batch, 8, expected));
    ARROW_ASSIGN_OR_RAISE(auto fingerprint, Column<S>(*batch, 9, expected));
    ARROW_ASSIGN_OR_RAISE(auto checksum, Column<S>(*batch, 10, expected));
    ARROW_ASSIGN_OR_RAISE(auto created, Column<I>(*batch, 11, expected));
    ARROW_ASSIGN_OR_RAISE(auto source, Column<S>(*batch, 12, expected));
    ARROW_ASSIGN_OR_RAISE(auto query, Column<S>(*batch, 13, expected));
    ARROW_ASSIGN_OR_RAISE(auto expires, Column<I>(*batch, 14, expected));
    ARROW_ASSIGN_OR_RAISE(auto cost, Column<I>(*batch, 15, expected));
    ARROW_ASSIGN_OR_RAISE(auto depends, Column<arrow::ListArray>(*batch, 16, expected));
    ARROW_ASSIGN_OR_RAISE(auto tags, Column<arrow::ListArray>(*batch, 17, expected));
    const arrow::UInt64Array* base_version = nullptr;
    if (format >= 2) {
      ARROW_ASSIGN_OR_RAISE(base_version, Column<arrow::UInt64Array>(*batch, 18, expected));
    }
    // One EntryMeta for every row (its strings keep their buffers), packed at once.
    EntryMeta e;
    for (int64_t r = 0; r < batch->num_rows(); ++r) {
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
  }
  return arrow::Status::OK();
}

// One replayed change.
struct Change {
  uint64_t seq = 0;
  uint8_t type = 0;
  EntryMeta entry;                // kPublish
  std::string key;                // kDrop
  std::vector<uint64_t> versions; // kPublish: dropped with it; kDrop: dropped
  uint64_t synced = 0;            // kSynced
};

arrow::Result<Change> DecodeChange(std::string_view payload) {
  Reader r(payload);
  Change c;
  if (!r.U64(&c.seq) || !r.U8(&c.type)) return arrow::Status::Invalid("short record");
  auto versions = [&]() {
    uint32_t n;
    if (!r.U32(&n) || n > payload.size()) return false;
    c.versions.resize(n);
    for (auto& v : c.versions) {
      if (!r.U64(&v)) return false;
    }
    return true;
  };
  bool ok = false;
  switch (c.type) {
    case kPublish: {
      std::string encoded;
      ok = r.Str(&encoded) && versions();
      if (ok) {
        ARROW_ASSIGN_OR_RAISE(c.entry, DecodeJournalEntry(encoded));
      }
      break;
    }
    case kDrop:
      ok = r.Str(&c.key) && versions();
      break;
    case kSynced:
      ok = r.U64(&c.synced);
      break;
    default:
      return arrow::Status::Invalid("unknown record type ", static_cast<int>(c.type));
  }
  if (!ok || !r.done()) return arrow::Status::Invalid("malformed record ", c.seq);
  return c;
}

// The records of one log; a damaged one is an error, a record cut short at its end is
// reported in *torn_at (the file's valid length) when `last`.
arrow::Status ReadLog(const std::string& path, uint64_t generation, bool last,
                      std::vector<Change>* out, int64_t* valid_bytes, uint64_t* start_seq) {
  ARROW_ASSIGN_OR_RAISE(auto file, arrow::io::MemoryMappedFile::Open(path, arrow::io::FileMode::READ));
  ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
  ARROW_ASSIGN_OR_RAISE(auto whole, file->ReadAt(0, size));
  std::string_view bytes(reinterpret_cast<const char*>(whole->data()), static_cast<size_t>(size));
  if (bytes.size() < kLogHeader || bytes.compare(0, 8, std::string_view(kLogMagic, 8)) != 0 ||
      LoadU64(bytes.data() + 8) != generation) {
    // A header cut short can only be the log the crash interrupted as it was created.
    if (last && bytes.size() < kLogHeader) {
      *valid_bytes = 0;
      *start_seq = 0;
      return arrow::Status::OK();
    }
    return arrow::Status::Invalid("bad header");
  }
  *start_seq = LoadU64(bytes.data() + 16);
  size_t pos = kLogHeader;
  while (pos < bytes.size()) {
    const size_t left = bytes.size() - pos;
    const uint32_t len = left >= 4 ? LoadU32(bytes.data() + pos) : 0;
    const bool complete = left >= kFrameHeader && len <= kMaxRecord && left >= kFrameHeader + len;
    const bool reaches_end = left < kFrameHeader || len > left - kFrameHeader ||
                             kFrameHeader + len == left;
    if (complete) {
      std::string_view payload = bytes.substr(pos + kFrameHeader, len);
      const uint64_t sum = LoadU64(bytes.data() + pos + 4);
      if (XXH3_64bits(payload.data(), payload.size()) == sum) {
        auto change = DecodeChange(payload);
        if (!change.ok()) return change.status().WithMessage("at byte ", pos, ": ", change.status().message());
        out->push_back(std::move(*change));
        pos += kFrameHeader + len;
        continue;
      }
    }
    if (last && reaches_end) break;  // the write a crash cut short: never acknowledged
    return arrow::Status::Invalid("record at byte ", pos, " fails its checksum");
  }
  *valid_bytes = static_cast<int64_t>(pos);
  return arrow::Status::OK();
}

}  // namespace

std::string EncodeJournalEntry(const EntryMeta& e) {
  std::string out;
  out.reserve(128 + e.key.size() + e.blob.size() + e.manifest.size() + e.query.size());
  PutStr(&out, e.key);
  PutU64(&out, e.version);
  PutStr(&out, e.blob);
  PutStr(&out, e.key_id);
  PutStr(&out, e.manifest);
  PutStr(&out, e.node);
  PutU64(&out, static_cast<uint64_t>(e.bytes));
  PutU64(&out, static_cast<uint64_t>(e.rows));
  PutU64(&out, static_cast<uint64_t>(e.batches));
  PutStr(&out, e.schema_fingerprint);
  PutStr(&out, e.checksum);
  PutU64(&out, static_cast<uint64_t>(e.created_ms));
  PutStr(&out, e.source);
  PutStr(&out, e.query);
  PutU64(&out, static_cast<uint64_t>(e.expires_ms));
  PutU64(&out, static_cast<uint64_t>(e.cost_ms));
  PutStrs(&out, e.depends_on);
  PutStrs(&out, e.tags);
  // Last and only for patches: records of earlier releases end after the tags.
  if (e.is_patch()) PutU64(&out, e.base_version);
  return out;
}

arrow::Result<EntryMeta> DecodeJournalEntry(std::string_view bytes) {
  Reader r(bytes);
  EntryMeta e;
  bool ok = r.Str(&e.key) && r.U64(&e.version) && r.Str(&e.blob) && r.Str(&e.key_id) &&
            r.Str(&e.manifest) && r.Str(&e.node) && r.I64(&e.bytes) && r.I64(&e.rows) &&
            r.I64(&e.batches) && r.Str(&e.schema_fingerprint) && r.Str(&e.checksum) &&
            r.I64(&e.created_ms) && r.Str(&e.source) && r.Str(&e.query) &&
            r.I64(&e.expires_ms) && r.I64(&e.cost_ms) && r.Strs(&e.depends_on) &&
            r.Strs(&e.tags) && (r.done() || (r.U64(&e.base_version) && r.done()));
  if (!ok) return arrow::Status::Invalid("malformed journal entry");
  return e;
}

arrow::Result<std::unique_ptr<IndexJournal>> IndexJournal::Open(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return arrow::Status::IOError("create index journal dir ", dir, ": ", ec.message());
  return std::unique_ptr<IndexJournal>(new IndexJournal(dir));
}

IndexJournal::~IndexJournal() {
  if (log_fd_ >= 0) ::close(log_fd_);
}

arrow::Status IndexJournal::SetAside(const std::string& why) {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const std::string aside = fmt::format("{}/damaged-{}", dir_, now);
  std::error_code ec;
  fs::create_directories(aside, ec);
  if (ec) return arrow::Status::IOError("create ", aside, ": ", ec.message());
  for (const auto& item : fs::directory_iterator(dir_, ec)) {
    const std::string name = item.path().filename().string();
    if (name.rfind("snapshot-", 0) != 0 && name.rfind("log-", 0) != 0) continue;
    fs::rename(item.path(), fs::path(aside) / name, ec);
    if (ec) return arrow::Status::IOError("move ", name, " to ", aside, ": ", ec.message());
  }
  spdlog::warn("index journal in {} is damaged ({}); set aside in {}; rebuilding the index "
               "from the manifests", dir_, why, aside);
  return FsyncDir(dir_);
}

arrow::Status IndexJournal::Discard() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(dir_, ec)) {
    const std::string name = item.path().filename().string();
    uint64_t generation = 0, sum = 0;
    if (ParseSnapshotName(name, &generation, &sum) || ParseLogName(name, &generation)) {
      fs::remove(item.path(), ec);
      if (ec) return arrow::Status::IOError("remove ", item.path().string(), ": ", ec.message());
    }
  }
  if (ec) return arrow::Status::IOError("list index journal ", dir_, ": ", ec.message());
  return FsyncDir(dir_);
}

arrow::Result<JournalRecovery> IndexJournal::Recover() {
  std::lock_guard<std::mutex> lock(mutex_);
  JournalRecovery rec;
  std::map<uint64_t, std::pair<std::string, uint64_t>> snapshots;  // gen -> (name, sum)
  std::map<uint64_t, std::string> logs;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(dir_, ec)) {
    const std::string name = item.path().filename().string();
    uint64_t generation = 0, sum = 0;
    if (ParseSnapshotName(name, &generation, &sum)) snapshots[generation] = {name, sum};
    else if (ParseLogName(name, &generation)) logs[generation] = name;
    else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".part") == 0) {
      fs::remove(item.path(), ec);  // a checkpoint the crash interrupted
    }
  }
  if (ec) return arrow::Status::IOError("list index journal ", dir_, ": ", ec.message());
  auto fail = [&](const std::string& why) -> arrow::Result<JournalRecovery> {
    ARROW_RETURN_NOT_OK(SetAside(why));
    JournalRecovery none;
    none.why = why;
    return none;
  };
  if (snapshots.empty()) {
    if (!logs.empty()) return fail("logs without a snapshot");
    rec.why = "no index journal yet";
    return rec;
  }
  const auto& [generation, newest] = *snapshots.rbegin();
  uint64_t seq = 0;
  auto read = ReadSnapshot(dir_ + "/" + newest.first, generation, newest.second, &seq,
                           &rec.entries);
  if (!read.ok()) return fail(newest.first + ": " + read.message());
  rec.snapshot_rows = static_cast<int64_t>(rec.entries.size());
  // Its log is made before it: without it, changes after the snapshot may be missing (an
  // append that failed removes the log so that it is not trusted).
  if (logs.find(generation) == logs.end()) return fail(LogName(generation) + " is missing");
  // The logs from this generation on, consecutive, continuing its sequence numbers.
  std::vector<Change> changes;
  int64_t valid = 0;
  uint64_t expect_generation = generation;
  uint64_t last_seq = seq;
  for (auto it = logs.lower_bound(generation); it != logs.end(); ++it) {
    if (it->first != expect_generation) return fail("log " + LogName(expect_generation) + " is missing");
    const bool last = std::next(it) == logs.end();
    const size_t before = changes.size();
    uint64_t start_seq = 0;
    auto st = ReadLog(dir_ + "/" + it->second, it->first, last, &changes, &valid, &start_seq);
    if (!st.ok()) return fail(it->second + ": " + st.message());
    if (valid > 0 && start_seq != last_seq) {
      return fail(fmt::format("{} starts after record {}, expected {}", it->second, start_seq,
                              last_seq));
    }
    for (size_t i = before; i < changes.size(); ++i) {
      if (changes[i].seq != last_seq + 1) {
        return fail(fmt::format("{}: record {} follows {}", it->second, changes[i].seq, last_seq));
      }
      last_seq = changes[i].seq;
    }
    if (last) {
      struct stat st_buf;
      const std::string path = dir_ + "/" + it->second;
      if (::stat(path.c_str(), &st_buf) == 0) rec.torn_bytes = st_buf.st_size - valid;
    }
    ++expect_generation;
  }

  // Apply the changes to the keys they touch.
  std::set<std::string> touched;
  uint64_t synced = seq;  // the snapshot was durable before any later record
  for (const auto& c : changes) {
    if (c.type == kPublish) touched.insert(c.entry.key);
    if (c.type == kDrop) touched.insert(c.key);
    if (c.type == kSynced) synced = std::max(synced, c.synced);
  }
  rec.log_records = std::count_if(changes.begin(), changes.end(),
                                  [](const Change& c) { return c.type != kSynced; });
  if (!touched.empty()) {
    std::map<std::string, std::map<uint64_t, PackedEntry>> side;
    std::vector<RecoveredEntry> untouched;
    untouched.reserve(rec.entries.size());
    for (auto& e : rec.entries) {
      if (touched.count(e.key)) {
        side[e.key].emplace(e.packed.version(), std::move(e.packed));
      } else {
        untouched.push_back(std::move(e));
      }
    }
    std::set<std::pair<std::string, uint64_t>> unsynced;
    for (auto& c : changes) {
      if (c.type == kPublish) {
        auto& versions = side[c.entry.key];
        for (uint64_t v : c.versions) versions.erase(v);
        if (c.seq > synced) unsynced.emplace(c.entry.key, c.entry.version);
        versions[c.entry.version] = PackedEntry::Pack(c.entry);
      } else if (c.type == kDrop) {
        auto found = side.find(c.key);
        if (found == side.end()) continue;
        for (uint64_t v : c.versions) found->second.erase(v);
      }
    }
    // Merge the two sorted runs back into key order.
    std::vector<RecoveredEntry> merged;
    merged.reserve(untouched.size() + side.size());
    auto u = untouched.begin();
    for (auto& [key, versions] : side) {
      while (u != untouched.end() && u->key < key) merged.push_back(std::move(*u++));
      for (auto& [version, e] : versions) {
        if (unsynced.count({key, version})) rec.unsynced.emplace_back(key, version);
        merged.push_back({key, std::move(e)});
      }
    }
    while (u != untouched.end()) merged.push_back(std::move(*u++));
    rec.entries = std::move(merged);
  }
  // Continue the newest log (cut to its last whole record), or start the snapshot's.
  generation_ = expect_generation == generation ? generation : expect_generation - 1;
  seq_ = last_seq;
  synced_marked_ = synced;
  const std::string path = dir_ + "/" + LogName(generation_);
  if (valid == 0) {
    ARROW_RETURN_NOT_OK(CreateLogLocked(generation_));
    // CreateLogLocked wrote the header for records after seq_.
  } else {
    log_fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (log_fd_ < 0) return ErrnoStatus("open " + path);
    if (rec.torn_bytes > 0 && ::ftruncate(log_fd_, valid) != 0) return ErrnoStatus("truncate " + path);
    log_bytes_ = valid;
  }
  rec.found = true;
  rec.generation = generation_;
  return rec;
}

arrow::Status IndexJournal::CreateLogLocked(uint64_t generation) {
  const std::string path = dir_ + "/" + LogName(generation);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("create " + path);
  std::string header(kLogMagic, 8);
  PutU64(&header, generation);
  PutU64(&header, seq_);
  auto st = WriteFully(fd, header, path);
  if (!st.ok()) {
    ::close(fd);
    return st;
  }
  if (log_fd_ >= 0) ::close(log_fd_);
  log_fd_ = fd;
  generation_ = generation;
  log_bytes_ = static_cast<int64_t>(header.size());
  return arrow::Status::OK();
}

void IndexJournal::AppendLocked(uint8_t type, const std::string& body) {
  std::string payload;
  payload.reserve(9 + body.size());
  PutU64(&payload, seq_ + 1);
  payload.push_back(static_cast<char>(type));
  payload += body;
  std::string frame;
  frame.reserve(kFrameHeader + payload.size());
  PutU32(&frame, static_cast<uint32_t>(payload.size()));
  PutU64(&frame, XXH3_64bits(payload.data(), payload.size()));
  frame += payload;
  arrow::Status st = log_fd_ < 0 ? arrow::Status::IOError("the index journal is not open")
                                 : WriteFully(log_fd_, frame, dir_ + "/" + LogName(generation_));
  if (!st.ok()) {
    if (append_error_.ok()) {
      append_error_ = st;
      // The log now lacks a change: remove it (possible on a full disk too), so that a
      // start before the next checkpoint rebuilds from the manifests instead of trusting it.
      const std::string path = dir_ + "/" + LogName(generation_);
      ::unlink(path.c_str());
      if (log_fd_ >= 0) ::close(log_fd_);
      log_fd_ = -1;
      spdlog::error("index journal: {}; removed {} so that it is not trusted; the next "
                    "checkpoint writes the whole index again", st.ToString(), path);
    }
    return;
  }
  ++seq_;
  log_bytes_ += static_cast<int64_t>(frame.size());
}

void IndexJournal::AppendPublish(const EntryMeta& entry, const std::vector<uint64_t>& dropped) {
  std::string body;
  PutStr(&body, EncodeJournalEntry(entry));
  PutU32(&body, static_cast<uint32_t>(dropped.size()));
  for (uint64_t v : dropped) PutU64(&body, v);
  std::lock_guard<std::mutex> lock(mutex_);
  AppendLocked(kPublish, body);
  ++changes_;
}

void IndexJournal::AppendDrop(const std::string& key, const std::vector<uint64_t>& versions) {
  if (versions.empty()) return;
  std::string body;
  PutStr(&body, key);
  PutU32(&body, static_cast<uint32_t>(versions.size()));
  for (uint64_t v : versions) PutU64(&body, v);
  std::lock_guard<std::mutex> lock(mutex_);
  AppendLocked(kDrop, body);
  ++changes_;
}

void IndexJournal::MarkSynced(uint64_t seq) {
  std::string body;
  PutU64(&body, seq);
  std::lock_guard<std::mutex> lock(mutex_);
  if (log_fd_ < 0 || seq <= synced_marked_) return;  // nothing new was covered
  AppendLocked(kSynced, body);
  synced_marked_ = seq;
}

uint64_t IndexJournal::last_seq() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return seq_;
}

uint64_t IndexJournal::changes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return changes_;
}

int64_t IndexJournal::log_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return log_bytes_;
}

arrow::Status IndexJournal::append_error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return append_error_;
}

arrow::Result<std::unique_ptr<SnapshotWriter>> IndexJournal::BeginCheckpoint() {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t generation = generation_ + 1;
  auto writer = std::make_unique<SnapshotFileWriter>(dir_, generation, seq_);
  ARROW_RETURN_NOT_OK(writer->Open());
  ARROW_RETURN_NOT_OK(CreateLogLocked(generation));
  append_error_ = arrow::Status::OK();  // the snapshot has what the log missed
  return writer;
}

arrow::Status IndexJournal::FinishCheckpoint(std::unique_ptr<SnapshotWriter> base,
                                             const std::function<arrow::Status()>& flush) {
  auto* writer = static_cast<SnapshotFileWriter*>(base.get());
  ARROW_RETURN_NOT_OK(writer->Close());
  if (flush) ARROW_RETURN_NOT_OK(flush());
  // The file itself, durably, then its name.
  int fd = ::open(writer->temp().c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open " + writer->temp());
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return ErrnoStatus("fsync " + writer->temp());
  const std::string final_path = dir_ + "/" + writer->final_name();
  if (::rename(writer->temp().c_str(), final_path.c_str()) != 0) {
    return ErrnoStatus("rename " + writer->temp());
  }
  writer->finished();
  ARROW_RETURN_NOT_OK(FsyncDir(dir_));
  // Older generations are covered now.
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(dir_, ec)) {
    const std::string name = item.path().filename().string();
    uint64_t generation = 0, sum = 0;
    if ((ParseSnapshotName(name, &generation, &sum) || ParseLogName(name, &generation)) &&
        generation < writer->generation()) {
      fs::remove(item.path(), ec);
    }
  }
  return FsyncDir(dir_);
}

}  // namespace quiver
