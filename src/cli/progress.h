// Progress: a one-line progress bar on stderr for `quiver put`, `get` and `query`: bytes,
// rate, rows, and a percentage when the total is known. It is drawn only when stderr is a
// terminal and only once a transfer has passed kProgressThreshold (4 MiB), so small
// transfers and scripts (stderr piped or redirected) never see it; stdout stays clean.
//
// Thread-safety: not safe for concurrent use (one transfer, one thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace quiver {

inline constexpr int64_t kProgressThreshold = 4 << 20;

class Progress {
 public:
  /// \brief A bar labelled `label` ("put s/o"); `enabled` false draws nothing. When
  /// `total_rows` is known the bar shows a percentage.
  Progress(std::string label, bool enabled, std::optional<int64_t> total_rows = {});
  ~Progress() { Finish(); }

  /// \brief True if stderr is a terminal (and TERM is not "dumb").
  static bool StderrIsTerminal();

  /// \brief Record the rows and bytes so far; redraws at most 10 times a second.
  void Update(int64_t rows, int64_t bytes);
  /// \brief Draw the final state (if anything was drawn) and end the line.
  void Finish();

 private:
  void Draw(bool final);

  std::string label_;
  bool enabled_;
  std::optional<int64_t> total_rows_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  int64_t rows_ = 0;
  int64_t bytes_ = 0;
  bool drawn_ = false;
  bool finished_ = false;
};

}  // namespace quiver
