// Fill: one execution of a query, shared by every reader that joined it (single flight).
//
// The filler encodes each record batch once and appends the encoded IPC payload here (and
// to the store's EntryWriter). Readers follow the payload log from its first message, live:
// a reader that joins while the fill runs first catches up on what was already produced,
// then waits for more. When the fill ends, every reader sees the same end: success, or
// the same error.
//
// Payloads stay in memory while the fill is joinable, so a late joiner can start from the
// first one -- up to `max_kept_bytes`. A fill that stops being joinable (its result grew
// past that, it bypasses the cache, it lost its lease) drops payloads every attached reader
// has consumed.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <arrow/ipc/writer.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

namespace quiver {

class Fill {
 public:
  /// \brief `max_kept_bytes`: payloads kept for late joiners, at most (0: no limit); past
  /// it the fill stops being joinable and its result is not cached.
  Fill(std::string key, bool joinable, int64_t max_kept_bytes = 0)
      : key_(std::move(key)), max_kept_bytes_(max_kept_bytes), joinable_(joinable) {}

  const std::string& key() const { return key_; }

  // --- producer side ---
  void SetSchema(std::shared_ptr<arrow::Schema> schema, arrow::ipc::IpcPayload payload);
  void Append(arrow::ipc::IpcPayload payload);
  /// \brief Stop accepting joiners and note why the result will not be cached.
  void StopCaching(std::string reason);
  /// \brief Note why the result will not be cached, still accepting joiners (an execution
  /// that cannot be stored is still shared by this node's requests).
  void NotCaching(std::string reason);
  /// \brief End the fill: `status` is what every reader sees at the end.
  void Finish(arrow::Status status);
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
  /// \brief Wait for the reader's next payload; std::nullopt at a successful end.
  arrow::Result<std::optional<arrow::ipc::IpcPayload>> WaitNext(int reader);
  /// Why the result is not being cached (empty while it is).
  std::string not_cached_reason() const;
  bool joinable() const;
  /// True once Finish() was called.
  bool finished() const;
  /// How many messages after the schema were appended so far.
  int64_t appended() const;

 private:
  void TrimLocked();
  void StopCachingLocked(std::string reason);

  const std::string key_;
  const int64_t max_kept_bytes_;
  mutable std::mutex mutex_;
  int64_t kept_bytes_ = 0;
  std::condition_variable cv_;
  bool joinable_;
  std::string not_cached_reason_;
  std::shared_ptr<arrow::Schema> schema_;
  arrow::ipc::IpcPayload schema_payload_;
  std::deque<arrow::ipc::IpcPayload> payloads_;
  size_t base_ = 0;                // absolute index of payloads_.front()
  std::map<int, size_t> readers_;  // reader id -> absolute index of its next payload
  int next_reader_ = 0;
  bool ever_attached_ = false;
  int handovers_ = 0;  // HandOver calls not yet followed by an Attach
  bool finished_ = false;
  arrow::Status status_;
};

}  // namespace quiver
