#include "index/index_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include "index/byte_codec.h"

namespace quiver {

namespace fs = std::filesystem;

namespace {

// --- record codec: little-endian fixed-width integers, length-prefixed strings ------------

constexpr char kLogMagic[8] = {'Q', 'V', 'R', 'J', 'R', 'N', 'L', '1'};
constexpr size_t kLogHeader = 8 + 8 + 8;  // magic, generation, seq of the snapshot before it
constexpr size_t kFrameHeader = 4 + 8;    // payload length, XXH3-64 of the payload
constexpr uint32_t kMaxRecord = 64u << 20;

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

bool ParseLogName(const std::string& name, uint64_t* generation) {
  return name.size() == 4 + 20 && name.compare(0, 4, "log-") == 0 &&
         ParseJournalNumber(std::string_view(name).substr(4), generation);
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

// The snapshots (generation -> name, checksum) and logs (generation -> name) in `dir`; the
// temporary file of a checkpoint a crash interrupted is removed.
struct JournalFiles {
  std::map<uint64_t, std::pair<std::string, uint64_t>> snapshots;
  std::map<uint64_t, std::string> logs;
};

arrow::Result<JournalFiles> ListJournal(const std::string& dir) {
  JournalFiles files;
  std::error_code ec;
  for (const auto& item : fs::directory_iterator(dir, ec)) {
    const std::string name = item.path().filename().string();
    uint64_t generation = 0, sum = 0;
    if (ParseSnapshotName(name, &generation, &sum)) files.snapshots[generation] = {name, sum};
    else if (ParseLogName(name, &generation)) files.logs[generation] = name;
    else if (name.size() > 5 && name.compare(name.size() - 5, 5, ".part") == 0) {
      fs::remove(item.path(), ec);  // a checkpoint the crash interrupted
    }
  }
  if (ec) return arrow::Status::IOError("list index journal ", dir, ": ", ec.message());
  return files;
}

// The records of the logs of a snapshot's generation and later.
struct LogReplay {
  std::vector<Change> changes;
  int64_t valid_bytes = 0;    // of the last log: up to its last whole record
  int64_t torn_bytes = 0;     // cut from the end of the last log
  uint64_t last_generation = 0;
  uint64_t last_seq = 0;
};

// The logs from `generation` (the snapshot's, whose last change is `seq`) on: consecutive,
// each continuing the sequence numbers. Anything else is damage (an error saying what).
arrow::Result<LogReplay> ReadLogs(const std::string& dir,
                                  const std::map<uint64_t, std::string>& logs,
                                  uint64_t generation, uint64_t seq) {
  // The snapshot's log is made before it: without it, changes after the snapshot may be
  // missing (an append that failed removes the log so that it is not trusted).
  if (logs.find(generation) == logs.end()) {
    return arrow::Status::Invalid(LogName(generation), " is missing");
  }
  LogReplay out;
  uint64_t expect_generation = generation;
  out.last_seq = seq;
  for (auto it = logs.lower_bound(generation); it != logs.end(); ++it) {
    if (it->first != expect_generation) {
      return arrow::Status::Invalid("log ", LogName(expect_generation), " is missing");
    }
    const bool last = std::next(it) == logs.end();
    const size_t before = out.changes.size();
    uint64_t start_seq = 0;
    const std::string path = dir + "/" + it->second;
    auto st = ReadLog(path, it->first, last, &out.changes, &out.valid_bytes, &start_seq);
    if (!st.ok()) return arrow::Status::Invalid(it->second, ": ", st.message());
    if (out.valid_bytes > 0 && start_seq != out.last_seq) {
      return arrow::Status::Invalid(it->second, " starts after record ", start_seq,
                                    ", expected ", out.last_seq);
    }
    for (size_t i = before; i < out.changes.size(); ++i) {
      if (out.changes[i].seq != out.last_seq + 1) {
        return arrow::Status::Invalid(it->second, ": record ", out.changes[i].seq,
                                      " follows ", out.last_seq);
      }
      out.last_seq = out.changes[i].seq;
    }
    if (last) {
      struct stat st_buf;
      if (::stat(path.c_str(), &st_buf) == 0) out.torn_bytes = st_buf.st_size - out.valid_bytes;
    }
    ++expect_generation;
  }
  out.last_generation = expect_generation == generation ? generation : expect_generation - 1;
  return out;
}

// Apply `changes` to the snapshot's entries in `rec` (whose last change is `seq`), keeping
// key order; note in `rec` the changes replayed and the versions published after the last
// flush. Returns the last sequence number a flush covered.
uint64_t ApplyChanges(std::vector<Change>* changes, uint64_t seq, JournalRecovery* rec) {
  std::set<std::string> touched;
  uint64_t synced = seq;  // the snapshot was durable before any later record
  for (const auto& c : *changes) {
    if (c.type == kPublish) touched.insert(c.entry.key);
    if (c.type == kDrop) touched.insert(c.key);
    if (c.type == kSynced) synced = std::max(synced, c.synced);
  }
  rec->log_records = std::count_if(changes->begin(), changes->end(),
                                   [](const Change& c) { return c.type != kSynced; });
  if (touched.empty()) return synced;
  std::map<std::string, std::map<uint64_t, PackedEntry>> side;
  std::vector<RecoveredEntry> untouched;
  untouched.reserve(rec->entries.size());
  for (auto& e : rec->entries) {
    if (touched.count(e.key)) {
      side[e.key].emplace(e.packed.version(), std::move(e.packed));
    } else {
      untouched.push_back(std::move(e));
    }
  }
  std::set<std::pair<std::string, uint64_t>> unsynced;
  for (auto& c : *changes) {
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
      if (unsynced.count({key, version})) rec->unsynced.emplace_back(key, version);
      merged.push_back({key, std::move(e)});
    }
  }
  while (u != untouched.end()) merged.push_back(std::move(*u++));
  rec->entries = std::move(merged);
  return synced;
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
  // Last, and only when set: records of earlier releases end after the tags, or after
  // base_version (a tenant comes after base_version, written as 0 for a whole version).
  if (e.is_patch() || !e.tenant.empty()) PutU64(&out, e.base_version);
  if (!e.tenant.empty()) PutStr(&out, e.tenant);
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
            r.Strs(&e.tags) &&
            (r.done() ||
             (r.U64(&e.base_version) && (r.done() || (r.Str(&e.tenant) && r.done()))));
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
  ARROW_ASSIGN_OR_RAISE(auto files, ListJournal(dir_));
  auto fail = [&](const std::string& why) -> arrow::Result<JournalRecovery> {
    ARROW_RETURN_NOT_OK(SetAside(why));
    JournalRecovery none;
    none.why = why;
    return none;
  };
  if (files.snapshots.empty()) {
    if (!files.logs.empty()) return fail("logs without a snapshot");
    rec.why = "no index journal yet";
    return rec;
  }
  const auto& [generation, newest] = *files.snapshots.rbegin();
  uint64_t seq = 0;
  auto read = ReadSnapshot(dir_ + "/" + newest.first, generation, newest.second, &seq,
                           &rec.entries);
  if (!read.ok()) return fail(newest.first + ": " + read.message());
  rec.snapshot_rows = static_cast<int64_t>(rec.entries.size());
  auto replay = ReadLogs(dir_, files.logs, generation, seq);
  if (!replay.ok()) return fail(replay.status().message());
  rec.torn_bytes = replay->torn_bytes;
  const uint64_t synced = ApplyChanges(&replay->changes, seq, &rec);
  // Continue the newest log (cut to its last whole record), or start the snapshot's.
  generation_ = replay->last_generation;
  seq_ = replay->last_seq;
  synced_marked_ = synced;
  const std::string path = dir_ + "/" + LogName(generation_);
  if (replay->valid_bytes == 0) {
    ARROW_RETURN_NOT_OK(CreateLogLocked(generation_));
    // CreateLogLocked wrote the header for records after seq_.
  } else {
    log_fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (log_fd_ < 0) return ErrnoStatus("open " + path);
    if (rec.torn_bytes > 0 && ::ftruncate(log_fd_, replay->valid_bytes) != 0) {
      return ErrnoStatus("truncate " + path);
    }
    log_bytes_ = replay->valid_bytes;
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
  ARROW_ASSIGN_OR_RAISE(auto writer, SnapshotFileWriter::Open(dir_, generation, seq_));
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
