#include "exec/table_view.h"

#include <algorithm>
#include <set>

#include <arrow/api.h>
#include <arrow/compute/api_vector.h>
#include <arrow/compute/exec.h>
#include <arrow/compute/expression.h>
#include <arrow/util/string.h>
#include <nlohmann/json.hpp>

#include "exec/filter_expr.h"
#include "format/compute_init.h"

namespace quiver {

namespace cp = arrow::compute;

std::string ViewSpec::CanonicalJson() const {
  nlohmann::json j = nlohmann::json::object();  // std::map underneath: keys sorted
  if (!columns.empty()) j["columns"] = columns;
  if (!filter.empty()) j["filter"] = filter;
  if (!sort.empty()) {
    auto keys = nlohmann::json::array();
    for (const auto& k : sort) keys.push_back((k.descending ? "-" : "") + k.column);
    j["sort"] = keys;
  }
  if (offset != 0) j["offset"] = offset;
  if (limit) j["limit"] = *limit;
  return j.dump();
}

arrow::Result<SortKey> ParseSortKey(const std::string& text) {
  std::string_view s = text;
  SortKey key;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    key.descending = s.front() == '-';
    s.remove_prefix(1);
  } else if (auto space = s.rfind(' '); space != std::string_view::npos) {
    const std::string order = arrow::internal::AsciiToLower(s.substr(space + 1));
    if (order == "desc" || order == "asc") {
      key.descending = order == "desc";
      s = s.substr(0, space);
      while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    }
  }
  if (s.empty()) {
    return arrow::Status::Invalid("sort key '", text, "' names no column (e.g. \"price\", "
                                  "\"-price\" or \"price desc\")");
  }
  key.column = std::string(s);
  return key;
}

namespace {

std::string ColumnList(const arrow::Schema& schema) {
  std::string names;
  for (const auto& f : schema.fields()) names += (names.empty() ? "" : ", ") + f->name();
  return names;
}

arrow::Result<int> ColumnIndex(const arrow::Schema& schema, const std::string& name,
                               const char* what) {
  const int i = schema.GetFieldIndex(name);
  if (i >= 0) return i;
  if (schema.GetAllFieldsByName(name).size() > 1) {
    return arrow::Status::Invalid(what, ": column '", name, "' is ambiguous (several have it)");
  }
  return arrow::Status::Invalid(what, ": unknown column '", name, "' (columns: ",
                                ColumnList(schema), ")");
}

// What a view needs once checked against the input's schema.
struct PreparedView {
  std::optional<cp::Expression> filter;
  std::vector<int> projection;  // empty: all columns
  std::shared_ptr<arrow::Schema> output_schema;
};

arrow::Result<PreparedView> Prepare(const ViewSpec& view,
                                    const std::shared_ptr<arrow::Schema>& schema) {
  ARROW_RETURN_NOT_OK(InitializeCompute());
  if (view.offset < 0) return arrow::Status::Invalid("offset must be >= 0, got ", view.offset);
  if (view.limit && *view.limit < 0) {
    return arrow::Status::Invalid("limit must be >= 0, got ", *view.limit);
  }
  PreparedView out;
  std::set<std::string> seen;
  for (const auto& name : view.columns) {
    ARROW_ASSIGN_OR_RAISE(int i, ColumnIndex(*schema, name, "columns"));
    if (!seen.insert(name).second) {
      return arrow::Status::Invalid("columns: '", name, "' is listed twice");
    }
    out.projection.push_back(i);
  }
  for (const auto& key : view.sort) {
    ARROW_RETURN_NOT_OK(ColumnIndex(*schema, key.column, "sort").status());
  }
  if (!view.filter.empty()) {
    ARROW_ASSIGN_OR_RAISE(out.filter, ParseFilter(view.filter, *schema));
  }
  if (out.projection.empty()) {
    out.output_schema = schema;
  } else {
    std::vector<std::shared_ptr<arrow::Field>> fields;
    for (int i : out.projection) fields.push_back(schema->field(i));
    out.output_schema = arrow::schema(std::move(fields), schema->metadata());
  }
  return out;
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> FilterBatch(
    const std::shared_ptr<arrow::RecordBatch>& batch, const cp::Expression& filter) {
  ARROW_ASSIGN_OR_RAISE(auto mask, cp::ExecuteScalarExpression(filter, cp::ExecBatch(*batch)));
  if (mask.is_scalar()) {  // a filter without columns (e.g. "true")
    const auto& s = mask.scalar_as<arrow::BooleanScalar>();
    return s.is_valid && s.value ? batch : batch->Slice(0, 0);
  }
  ARROW_ASSIGN_OR_RAISE(auto kept, cp::Filter(batch, mask));
  return kept.record_batch();
}

// Reads the view batch by batch (no sort): filter, skip, limit, project.
class StreamingView final : public arrow::RecordBatchReader {
 public:
  StreamingView(std::shared_ptr<arrow::RecordBatchReader> input, PreparedView prepared,
                int64_t offset, std::optional<int64_t> limit)
      : input_(std::move(input)),
        view_(std::move(prepared)),
        to_skip_(offset),
        left_(limit) {}

  std::shared_ptr<arrow::Schema> schema() const override { return view_.output_schema; }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    *out = nullptr;
    while (!left_ || *left_ > 0) {
      ARROW_ASSIGN_OR_RAISE(auto batch, input_->Next());
      if (!batch) break;
      if (view_.filter) {
        ARROW_ASSIGN_OR_RAISE(batch, FilterBatch(batch, *view_.filter));
      }
      if (to_skip_ > 0) {
        const int64_t skip = std::min(to_skip_, batch->num_rows());
        to_skip_ -= skip;
        batch = batch->Slice(skip);
      }
      if (left_) {
        batch = batch->Slice(0, std::min(*left_, batch->num_rows()));
        *left_ -= batch->num_rows();
      }
      if (batch->num_rows() == 0) continue;
      if (!view_.projection.empty()) {
        ARROW_ASSIGN_OR_RAISE(batch, batch->SelectColumns(view_.projection));
        batch = batch->ReplaceSchema(view_.output_schema).ValueOr(batch);
      }
      *out = std::move(batch);
      return arrow::Status::OK();
    }
    return Close();
  }

  arrow::Status Close() override {
    if (!input_) return arrow::Status::OK();
    auto st = input_->Close();
    input_.reset();
    return st;
  }

 private:
  std::shared_ptr<arrow::RecordBatchReader> input_;
  PreparedView view_;
  int64_t to_skip_;
  std::optional<int64_t> left_;
};

// The rows of `table` in sort order; with `first`, at least its first `first` rows. When
// those are few, a top-k selection does it, with the row number as the last key so that
// ties keep their order as in a stable sort.
arrow::Result<std::shared_ptr<arrow::Array>> SortIndices(
    const std::shared_ptr<arrow::Table>& table, std::vector<cp::SortKey> keys,
    std::optional<int64_t> first) {
  const int64_t n = table->num_rows();
  if (!first || *first * 4 >= n) return cp::SortIndices(table, cp::SortOptions(std::move(keys)));
  std::string row = "__quiver_row";
  while (table->schema()->GetFieldIndex(row) >= 0) row += "_";
  arrow::Int64Builder numbers;
  ARROW_RETURN_NOT_OK(numbers.Reserve(n));
  for (int64_t i = 0; i < n; ++i) numbers.UnsafeAppend(i);
  ARROW_ASSIGN_OR_RAISE(auto row_numbers, numbers.Finish());
  ARROW_ASSIGN_OR_RAISE(auto numbered,
                        table->AddColumn(table->num_columns(), arrow::field(row, arrow::int64()),
                                         std::make_shared<arrow::ChunkedArray>(row_numbers)));
  keys.emplace_back(row, cp::SortOrder::Ascending);
  return cp::SelectKUnstable(numbered, cp::SelectKOptions(*first, std::move(keys)));
}

// A sorted view: every filtered row is read, sorted (stable), sliced and projected.
arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> SortedView(
    std::shared_ptr<arrow::RecordBatchReader> input, const ViewSpec& view,
    const PreparedView& prepared) {
  const auto schema = input->schema();
  std::vector<std::shared_ptr<arrow::RecordBatch>> kept;
  while (true) {
    ARROW_ASSIGN_OR_RAISE(auto batch, input->Next());
    if (!batch) break;
    if (prepared.filter) {
      ARROW_ASSIGN_OR_RAISE(batch, FilterBatch(batch, *prepared.filter));
    }
    if (batch->num_rows() > 0) kept.push_back(std::move(batch));
  }
  ARROW_RETURN_NOT_OK(input->Close());
  ARROW_ASSIGN_OR_RAISE(auto table, arrow::Table::FromRecordBatches(schema, std::move(kept)));
  std::vector<cp::SortKey> keys;
  for (const auto& k : view.sort) {
    keys.emplace_back(k.column, k.descending ? cp::SortOrder::Descending : cp::SortOrder::Ascending,
                      cp::NullPlacement::AtEnd);
  }
  std::optional<int64_t> first;  // only the first offset + limit rows of the order are needed
  if (view.limit) first = view.offset + *view.limit;
  ARROW_ASSIGN_OR_RAISE(auto indices, SortIndices(table, std::move(keys), first));
  const int64_t n = indices->length();
  const int64_t begin = std::min(view.offset, n);
  const int64_t length = view.limit ? std::min(*view.limit, n - begin) : n - begin;
  ARROW_ASSIGN_OR_RAISE(auto taken, cp::Take(table, indices->Slice(begin, length)));
  auto sorted = taken.table();
  if (!prepared.projection.empty()) {
    ARROW_ASSIGN_OR_RAISE(sorted, sorted->SelectColumns(prepared.projection));
  }
  sorted = sorted->ReplaceSchemaMetadata(schema->metadata());
  return std::make_shared<arrow::TableBatchReader>(std::move(sorted));
}

}  // namespace

arrow::Status ValidateView(const ViewSpec& view, const arrow::Schema& schema) {
  return Prepare(view, std::make_shared<arrow::Schema>(schema)).status();
}

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> ApplyView(
    std::shared_ptr<arrow::RecordBatchReader> input, const ViewSpec& view) {
  ARROW_ASSIGN_OR_RAISE(auto prepared, Prepare(view, input->schema()));
  if (!view.sort.empty()) return SortedView(std::move(input), view, prepared);
  return std::make_shared<StreamingView>(std::move(input), std::move(prepared), view.offset,
                                         view.limit);
}

}  // namespace quiver
