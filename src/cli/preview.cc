#include "cli/preview.h"

#include <algorithm>
#include <string>
#include <vector>

#include <arrow/array.h>
#include <arrow/chunked_array.h>
#include <arrow/scalar.h>
#include <fmt/format.h>

namespace quiver {

namespace {

constexpr size_t kMaxCellWidth = 32;

size_t Width(const std::string& text) {
  size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

// The displayed pieces of `text`, each a character or the escape of a control character
// (\n, \t, \x1b, \u009b): a value cannot move the cursor, recolour or retitle the
// terminal, or break the table. C0 controls and DEL are single bytes; C1 controls
// (U+0080..U+009F) are 0xC2 0x80..0x9F in UTF-8.
std::vector<std::string> EscapedPieces(const std::string& text) {
  std::vector<std::string> pieces;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const auto next = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0;
    if (c == '\n') {
      pieces.push_back("\\n");
    } else if (c == '\r') {
      pieces.push_back("\\r");
    } else if (c == '\t') {
      pieces.push_back("\\t");
    } else if (c < 0x20 || c == 0x7f) {
      pieces.push_back(fmt::format("\\x{:02x}", c));
    } else if (c == 0xC2 && next >= 0x80 && next <= 0x9F) {
      pieces.push_back(fmt::format("\\u{:04x}", next));
      ++i;
    } else if ((c & 0xC0) == 0x80 && !pieces.empty()) {
      pieces.back() += static_cast<char>(c);  // continues a UTF-8 character
    } else {
      pieces.emplace_back(1, static_cast<char>(c));
    }
  }
  return pieces;
}

// `raw` escaped, cut to kMaxCellWidth characters (never inside a character or an escape)
// with the cut marked by "...".
std::string Fit(const std::string& raw) {
  const std::vector<std::string> pieces = EscapedPieces(raw);
  size_t total = 0;
  for (const auto& piece : pieces) total += Width(piece);
  std::string text;
  size_t width = 0;
  for (const auto& piece : pieces) {
    if (total > kMaxCellWidth && width + Width(piece) > kMaxCellWidth - 3) return text + "...";
    text += piece;
    width += Width(piece);
  }
  return text;
}

std::string Pad(const std::string& text, size_t width) {
  return text + std::string(width - std::min(width, Width(text)), ' ');
}

std::string Cell(const arrow::ChunkedArray& column, int64_t row) {
  auto scalar = column.GetScalar(row);
  if (!scalar.ok()) return "?";
  if (!(*scalar)->is_valid) return "null";
  return (*scalar)->ToString();
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::Table>> ReadHead(arrow::RecordBatchReader* reader,
                                                      int64_t max_rows) {
  std::vector<std::shared_ptr<arrow::RecordBatch>> kept;
  int64_t have = 0;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
    if (!batch) break;
    if (have < max_rows) {
      auto part = batch->Slice(0, std::min(batch->num_rows(), max_rows - have));
      have += part->num_rows();
      kept.push_back(std::move(part));
    }
  }
  return arrow::Table::FromRecordBatches(reader->schema(), kept);
}

void PrintPreview(const arrow::Table& head, int64_t total_rows, std::ostream& out) {
  const int ncols = head.num_columns();
  std::vector<std::vector<std::string>> lines(2 + head.num_rows());
  for (int c = 0; c < ncols; ++c) {
    lines[0].push_back(Fit(head.schema()->field(c)->name()));
    lines[1].push_back(Fit(head.schema()->field(c)->type()->ToString()));
    for (int64_t r = 0; r < head.num_rows(); ++r) {
      lines[2 + r].push_back(Fit(Cell(*head.column(c), r)));
    }
  }
  std::vector<size_t> widths(ncols, 0);
  for (const auto& line : lines) {
    for (int c = 0; c < ncols; ++c) widths[c] = std::max(widths[c], Width(line[c]));
  }
  auto print = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (int c = 0; c < ncols; ++c) {
      text += c + 1 < ncols ? Pad(cells[c], widths[c]) + "  " : cells[c];
    }
    out << text << "\n";
  };
  print(lines[0]);
  print(lines[1]);
  std::vector<std::string> rule;
  for (int c = 0; c < ncols; ++c) rule.push_back(std::string(widths[c], '-'));
  print(rule);
  for (size_t i = 2; i < lines.size(); ++i) print(lines[i]);
  if (head.num_rows() < total_rows) {
    out << fmt::format("({} of {} rows)\n", head.num_rows(), total_rows);
  } else {
    out << fmt::format("({} {})\n", total_rows, total_rows == 1 ? "row" : "rows");
  }
}

}  // namespace quiver
