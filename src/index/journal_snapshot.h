// The index journal's snapshot file (see index/index_journal.h): every version the embedded
// index held when a generation began, as an Arrow IPC file with one row per version, in key
// then version order, named snapshot-<generation>-<xxh3 of the whole file>.arrow. Format 2
// (written now) has a base_version column; format 1 files, without it, are still read.
//
// Thread-safety: a SnapshotFileWriter is used by one thread; the functions are reentrant.
#pragma once

#include <charconv>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <arrow/ipc/writer.h>

#include "index/entry.h"
#include "index/packed_entry.h"

namespace quiver {

class ChecksummingOutputStream;  // format/checksum.h

/// One recovered version: its key, and the version packed as the index keeps it (so that a
/// million of them cost ~100 bytes each between reading and loading, not an EntryMeta's).
struct RecoveredEntry {
  std::string key;
  PackedEntry packed;
};

/// Rows of a snapshot, written in batches as they are added.
class SnapshotWriter {
 public:
  virtual ~SnapshotWriter() = default;
  virtual arrow::Status Add(const EntryMeta& entry) = 0;
  /// \brief Write what is buffered and the file's footer.
  virtual arrow::Status Close() = 0;
  virtual int64_t rows() const = 0;
};

/// A decimal (or `base`) number that is all of `text`.
template <typename T>
bool ParseJournalNumber(std::string_view text, T* out, int base = 10) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, base);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

/// \brief The generation and checksum a snapshot's file name carries; false if `name` is
/// not one.
bool ParseSnapshotName(const std::string& name, uint64_t* generation, uint64_t* sum);

/// \brief Read snapshot `path`, checking its checksum (`sum`, from its name) and generation;
/// the sequence number of the last change it includes in *seq, its rows appended to *out.
arrow::Status ReadSnapshot(const std::string& path, uint64_t generation, uint64_t sum,
                           uint64_t* seq, std::vector<RecoveredEntry>* out);

/// Streams rows into a temporary file in the journal's directory (snapshot-<gen>.part),
/// checksumming every byte on its way; the caller makes it durable and gives it its final
/// name. An unfinished file is removed when the writer is destroyed.
class SnapshotFileWriter final : public SnapshotWriter {
 public:
  /// \brief Open the temporary file of generation `generation`, whose last change is `seq`.
  static arrow::Result<std::unique_ptr<SnapshotFileWriter>> Open(std::string dir,
                                                                 uint64_t generation,
                                                                 uint64_t seq);
  ~SnapshotFileWriter() override;

  arrow::Status Add(const EntryMeta& e) override;
  arrow::Status Close() override;
  int64_t rows() const override { return rows_total_; }

  uint64_t generation() const { return generation_; }
  const std::string& temp() const { return temp_; }
  /// The name the file gets once complete (valid after Close()).
  std::string final_name() const;
  /// \brief The file was renamed: nothing to remove.
  void finished() { finished_ = true; }

 private:
  SnapshotFileWriter(std::string dir, uint64_t generation, uint64_t seq);
  arrow::Status WriteBatch();

  const std::string dir_;
  const uint64_t generation_;
  const std::string temp_;
  std::shared_ptr<arrow::Schema> schema_;
  std::shared_ptr<arrow::io::FileOutputStream> file_;
  std::unique_ptr<ChecksummingOutputStream> counted_;
  std::shared_ptr<arrow::ipc::RecordBatchWriter> writer_;
  arrow::StringBuilder key_, blob_, key_id_, manifest_, node_, fingerprint_, checksum_, source_,
      query_, tenant_;
  arrow::UInt64Builder version_, base_version_;
  arrow::Int64Builder bytes_, rows_, batches_, created_, expires_, cost_;
  arrow::ListBuilder depends_, tags_;
  int64_t pending_ = 0;
  int64_t rows_total_ = 0;
  bool finished_ = false;
};

}  // namespace quiver
