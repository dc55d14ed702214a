#include "cli/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "common/config.h"

namespace quiver {

namespace {

int TerminalWidth() {
  struct winsize ws {};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
  return 80;
}

std::string Thousands(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

Progress::Progress(std::string label, bool enabled, std::optional<int64_t> total_rows)
    : label_(std::move(label)),
      enabled_(enabled),
      total_rows_(total_rows),
      start_(std::chrono::steady_clock::now()) {}

bool Progress::StderrIsTerminal() {
  const char* term = std::getenv("TERM");
  return ::isatty(STDERR_FILENO) && !(term && std::strcmp(term, "dumb") == 0);
}

void Progress::Update(int64_t rows, int64_t bytes) {
  rows_ = rows;
  bytes_ = bytes;
  if (!enabled_ || finished_ || bytes_ < kProgressThreshold) return;
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  Draw(false);
}

void Progress::Finish() {
  if (finished_) return;
  finished_ = true;
  if (!drawn_) return;
  Draw(true);
  std::fputc('\n', stderr);
  std::fflush(stderr);
}

void Progress::Draw(bool final) {
  drawn_ = true;
  const double secs =
      std::max(1e-3, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
                         .count());
  // Fixed-width fields, so that the bar does not jump as the numbers grow.
  std::string line = fmt::format("{}  {:>10}  {:>12}  {:>11} rows", label_,
                                 FormatByteSize(bytes_),
                                 FormatByteSize(static_cast<int64_t>(bytes_ / secs)) + "/s",
                                 Thousands(rows_));
  const int width = TerminalWidth() - 1;
  if (total_rows_ && *total_rows_ > 0) {
    const double done = std::min(1.0, static_cast<double>(rows_) / *total_rows_);
    const int bar = std::min(30, width - static_cast<int>(line.size()) - 9);
    if (bar >= 10) {
      const int filled = static_cast<int>(done * bar);
      line += fmt::format("  [{}{}] {:3.0f}%", std::string(filled, '#'),
                          std::string(bar - filled, '.'), done * 100);
    }
  }
  if (final) line += fmt::format("  {:.1f} s", secs);
  if (static_cast<int>(line.size()) > width) line.resize(width);
  // \r back to the line's start, \x1b[K clears what a longer previous line left.
  std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
  std::fflush(stderr);
}

}  // namespace quiver
