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

// Cuts `text` to `width` characters (UTF-8 aware), marking the cut with "...".
std::string Fit(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  size_t chars = 0, cut = std::string::npos;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
    if (chars == kMaxCellWidth - 3) cut = i;
    if (++chars > kMaxCellWidth) return text.substr(0, cut) + "...";
  }
  return text;
}

size_t Width(const std::string& text) {
  size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
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
