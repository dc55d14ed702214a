// Fill: one execution of a query, shared by every reader that joined it (single flight).
//
// The filler encodes each record batch once. Readers follow the messages from the first one,
// live: a reader that joins while the fill runs first catches up on what was already
// produced, then waits for more. When the fill ends, every reader sees the same end:
// success, or the same error.
//
// Where the messages are read from:
//   - from a local file while the result is written to one (the entry's temp file, or the
//     disk tier's copy of an upload to S3): the filler announces each message once it is
//     complete in the file (flushed, not fsynced), and each reader reads the file at its
//     own offset. The fill holds no message, a reader one at a time. The fill keeps the
//     file open, so the rename at commit or the unlink at abort does not disturb readers.
//   - from memory otherwise (no local file: an S3 store without a disk tier, an encrypted
//     store, a fill followed from another node or run without the index), and after the file
//     stopped growing (the result outgrew max_entry_bytes, its write failed, the disk tier
//     dropped its copy): a message then follows the file's as a payload in memory.
//
// Memory is bounded by `max_kept_bytes`. While the fill is joinable, every payload since the
// first is kept for late joiners -- until they add up to more than the bound: then the fill
// stops accepting joiners. A fill that is not joinable drops a payload once every attached
// reader consumed it, and Append() waits while the slowest reader is more than the bound
// behind (backpressure on the producer). A fill reading from its file is not bounded at all:
// it keeps nothing in memory, and a slow reader does not hold the producer back.
//
// Thread-safety: all methods are safe to call concurrently; a reader id is used by one
// thread at a time.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <arrow/io/interfaces.h>
#include <arrow/ipc/writer.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

namespace quiver {

class Fill {
 public:
  /// Default of `max_kept_bytes`.
  static constexpr int64_t kDefaultMaxKeptBytes = int64_t{64} << 20;

  /// \brief `max_kept_bytes`: payloads held in memory, at most (0: no limit) -- for late
  /// joiners while joinable (past it the fill stops being joinable, but may still be
  /// cached), and for readers behind the producer once it is not (past it Append waits).
  Fill(std::string key, bool joinable, int64_t max_kept_bytes = kDefaultMaxKeptBytes)
      : key_(std::move(key)), max_kept_bytes_(max_kept_bytes), joinable_(joinable) {}

  const std::string& key() const { return key_; }

  // --- producer side ---
  void SetSchema(std::shared_ptr<arrow::Schema> schema, arrow::ipc::IpcPayload payload);
  /// \brief Serve messages from `file` from now on; the first one starts at `offset`.
  /// REQUIRES: nothing appended yet. The file must be readable (ReadAt, concurrently) as
  /// far as AppendedToFile() announced.
  void UseFile(std::shared_ptr<arrow::io::RandomAccessFile> file, int64_t offset);
  /// \brief The next message is complete in the file, which now ends at `end` (an offset in
  /// the file). REQUIRES: UseFile(), and no Append() since.
  void AppendedToFile(int64_t end);
  /// \brief Append the next message as a payload kept in memory; the file, if there is one,
  /// ends before it for good. Waits while the slowest reader is more than max_kept_bytes
  /// behind, unless the fill is finished.
  void Append(arrow::ipc::IpcPayload payload);
  /// \brief Stop accepting joiners and note why the result will not be cached.
  void StopCaching(std::string reason);
  /// \brief Note why the result will not be cached, still accepting joiners (an execution
  /// that cannot be stored is still shared by this node's requests).
  void NotCaching(std::string reason);
  /// \brief End the fill: `status` is what every reader sees at the end.
  void Finish(arrow::Status status);
  /// \brief The filler is done with the fill: its result is published, or never will be.
  /// (Finish() comes earlier, so that readers need not wait for the commit.)
  void Settle();
  /// \brief Wait for Settle(): for a caller that needs the result stored, not streamed.
  void WaitSettled();
  /// \brief True once every reader detached after at least one attached (and the fill is
  /// not finished): nobody reads any more.
  bool Abandoned() const;

  // --- consumer side ---
  /// \brief Register a reader; returns its id. Fails if the fill is no longer joinable.
  std::optional<int> Attach();
  void Detach(int reader);
  /// \brief Detach a reader that hands the stream over to one that will attach later
  /// (GetFlightInfo, then DoGet): until someone attaches, the fill is not abandoned.
  void HandOver(int reader);
  /// \brief Wait for the schema (or the fill's error).
  arrow::Result<std::pair<std::shared_ptr<arrow::Schema>, arrow::ipc::IpcPayload>> WaitSchema();
  /// \brief Wait for the reader's next payload; std::nullopt at a successful end. A
  /// message read from the file is a payload of buffers read for this call alone.
  arrow::Result<std::optional<arrow::ipc::IpcPayload>> WaitNext(int reader);
  /// Why the result is not being cached (empty while it is).
  std::string not_cached_reason() const;
  bool joinable() const;
  /// True once Finish() was called.
  bool finished() const;
  /// How many messages after the schema were appended so far.
  int64_t appended() const;
  /// Bytes of the messages after the schema appended so far (in the file or in memory).
  int64_t appended_bytes() const;
  /// Bytes of payloads held in memory now.
  int64_t kept_bytes() const;
  /// True while new messages are read from the file.
  bool reading_file() const;

 private:
  struct Reader {
    size_t next = 0;          // absolute index of its next message
    int64_t file_offset = -1;  // where that message starts in the file; -1: the first one
  };
  size_t EndLocked() const { return base_ + payloads_.size(); }
  /// Drop payloads nobody can read any more; true if any went.
  bool TrimLocked();
  void StopCachingLocked(std::string reason);

  const std::string key_;
  const int64_t max_kept_bytes_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;     // readers: a message, the schema or the end arrived
  std::condition_variable space_;  // the producer: kept_bytes_ went down, or the end
  bool joinable_;
  std::string not_cached_reason_;
  std::shared_ptr<arrow::Schema> schema_;
  arrow::ipc::IpcPayload schema_payload_;
  // Messages [0, file_messages_) are in the file, complete up to file_end_.
  std::shared_ptr<arrow::io::RandomAccessFile> file_;
  int64_t file_start_ = 0;
  int64_t file_end_ = 0;
  size_t file_messages_ = 0;
  bool file_open_ = false;  // the next message may still go to the file
  // Messages [base_, base_ + payloads_.size()) are in memory.
  std::deque<arrow::ipc::IpcPayload> payloads_;
  size_t base_ = 0;
  int64_t kept_bytes_ = 0;
  int64_t appended_bytes_ = 0;
  std::map<int, Reader> readers_;
  int next_reader_ = 0;
  bool ever_attached_ = false;
  int handovers_ = 0;  // HandOver calls not yet followed by an Attach
  bool finished_ = false;
  bool settled_ = false;
  arrow::Status status_;
};

}  // namespace quiver
