#include "format/json_lines.h"

#include <charconv>
#include <string>
#include <vector>

#include <arrow/api.h>
#include <arrow/compute/cast.h>
#include <arrow/util/base64.h>
#include <arrow/util/checked_cast.h>
#include <arrow/util/float16.h>
#include <nlohmann/json.hpp>

#include "format/compute_init.h"

namespace quiver {

namespace {

using arrow::internal::checked_cast;
using nlohmann::json;

// Lines are handed to the sink in pieces of about this size.
constexpr size_t kFlushBytes = size_t{1} << 20;

// Types JSON has no literal for; Arrow casts them to text.
bool NeedsText(const arrow::DataType& type) {
  switch (type.id()) {
    case arrow::Type::DATE32:
    case arrow::Type::DATE64:
    case arrow::Type::TIMESTAMP:
    case arrow::Type::TIME32:
    case arrow::Type::TIME64:
    case arrow::Type::DURATION:
    case arrow::Type::DECIMAL32:
    case arrow::Type::DECIMAL64:
    case arrow::Type::DECIMAL128:
    case arrow::Type::DECIMAL256:
    case arrow::Type::INTERVAL_MONTHS:
    case arrow::Type::INTERVAL_DAY_TIME:
    case arrow::Type::INTERVAL_MONTH_DAY_NANO:
      return true;
    default:
      return false;
  }
}

void AppendString(std::string_view text, std::string* out) {
  // The library escapes; invalid UTF-8 is replaced rather than failing the whole response.
  out->append(json(std::string(text)).dump(-1, ' ', false, json::error_handler_t::replace));
}

template <typename T>
void AppendInteger(T value, std::string* out) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out->append(buf, end);
}

void AppendFloat(double value, std::string* out) {
  out->append(json(value).dump());  // shortest round-trip text; NaN and infinities -> null
}

template <typename ListType>
arrow::Status AppendList(const ListType& list, int64_t i, std::string* out);

// A null, boolean or number; false if `a` holds none of those.
bool AppendPrimitive(const arrow::Array& a, int64_t i, std::string* out) {
  switch (a.type_id()) {
    case arrow::Type::NA:
      out->append("null");
      return true;
    case arrow::Type::BOOL:
      out->append(checked_cast<const arrow::BooleanArray&>(a).Value(i) ? "true" : "false");
      return true;
#define QUIVER_INTEGER_CASE(ID, ARRAY)                                        \
  case arrow::Type::ID:                                                       \
    AppendInteger(checked_cast<const arrow::ARRAY&>(a).Value(i), out);        \
    return true;
      QUIVER_INTEGER_CASE(INT8, Int8Array)
      QUIVER_INTEGER_CASE(INT16, Int16Array)
      QUIVER_INTEGER_CASE(INT32, Int32Array)
      QUIVER_INTEGER_CASE(INT64, Int64Array)
      QUIVER_INTEGER_CASE(UINT8, UInt8Array)
      QUIVER_INTEGER_CASE(UINT16, UInt16Array)
      QUIVER_INTEGER_CASE(UINT32, UInt32Array)
      QUIVER_INTEGER_CASE(UINT64, UInt64Array)
#undef QUIVER_INTEGER_CASE
    case arrow::Type::HALF_FLOAT:
      AppendFloat(arrow::util::Float16::FromBits(
                      checked_cast<const arrow::HalfFloatArray&>(a).Value(i))
                      .ToFloat(),
                  out);
      return true;
    case arrow::Type::FLOAT:
      AppendFloat(checked_cast<const arrow::FloatArray&>(a).Value(i), out);
      return true;
    case arrow::Type::DOUBLE:
      AppendFloat(checked_cast<const arrow::DoubleArray&>(a).Value(i), out);
      return true;
    default:
      return false;
  }
}

// A string (as itself) or binary value (as base64); false if `a` holds neither.
bool AppendBinaryLike(const arrow::Array& a, int64_t i, std::string* out) {
  std::string_view view;
  bool binary = true;
  switch (a.type_id()) {
    case arrow::Type::STRING:
      binary = false;
      [[fallthrough]];
    case arrow::Type::BINARY:
      view = checked_cast<const arrow::BinaryArray&>(a).GetView(i);
      break;
    case arrow::Type::LARGE_STRING:
      binary = false;
      [[fallthrough]];
    case arrow::Type::LARGE_BINARY:
      view = checked_cast<const arrow::LargeBinaryArray&>(a).GetView(i);
      break;
    case arrow::Type::STRING_VIEW:
      binary = false;
      [[fallthrough]];
    case arrow::Type::BINARY_VIEW:
      view = checked_cast<const arrow::BinaryViewArray&>(a).GetView(i);
      break;
    case arrow::Type::FIXED_SIZE_BINARY:
      view = checked_cast<const arrow::FixedSizeBinaryArray&>(a).GetView(i);
      break;
    default:
      return false;
  }
  if (binary) {
    AppendString(arrow::util::base64_encode(view), out);
  } else {
    AppendString(view, out);
  }
  return true;
}

arrow::Status AppendValue(const arrow::Array& a, int64_t i, std::string* out) {
  if (a.IsNull(i)) {
    out->append("null");
    return arrow::Status::OK();
  }
  if (AppendPrimitive(a, i, out) || AppendBinaryLike(a, i, out)) return arrow::Status::OK();
  switch (a.type_id()) {
    case arrow::Type::DICTIONARY: {
      const auto& d = checked_cast<const arrow::DictionaryArray&>(a);
      return AppendValue(*d.dictionary(), d.GetValueIndex(i), out);
    }
    case arrow::Type::LIST:
    case arrow::Type::MAP:  // a list of {"key", "value"} structs
      return AppendList(checked_cast<const arrow::ListArray&>(a), i, out);
    case arrow::Type::LARGE_LIST:
      return AppendList(checked_cast<const arrow::LargeListArray&>(a), i, out);
    case arrow::Type::FIXED_SIZE_LIST:
      return AppendList(checked_cast<const arrow::FixedSizeListArray&>(a), i, out);
    case arrow::Type::STRUCT: {
      const auto& s = checked_cast<const arrow::StructArray&>(a);
      out->push_back('{');
      for (int f = 0; f < s.num_fields(); ++f) {
        if (f > 0) out->push_back(',');
        AppendString(s.type()->field(f)->name(), out);
        out->push_back(':');
        ARROW_RETURN_NOT_OK(AppendValue(*s.field(f), i, out));
      }
      out->push_back('}');
      break;
    }
    default: {
      // Temporal, decimal and other types without a JSON literal: Arrow's text of the value.
      ARROW_ASSIGN_OR_RAISE(auto scalar, a.GetScalar(i));
      AppendString(scalar->ToString(), out);
      break;
    }
  }
  return arrow::Status::OK();
}

template <typename ListType>
arrow::Status AppendList(const ListType& list, int64_t i, std::string* out) {
  const auto& values = *list.values();
  const int64_t begin = list.value_offset(i), length = list.value_length(i);
  out->push_back('[');
  for (int64_t k = 0; k < length; ++k) {
    if (k > 0) out->push_back(',');
    ARROW_RETURN_NOT_OK(AppendValue(values, begin + k, out));
  }
  out->push_back(']');
  return arrow::Status::OK();
}

class JsonLinesWriter final : public arrow::ipc::RecordBatchWriter {
 public:
  JsonLinesWriter(arrow::io::OutputStream* sink, std::shared_ptr<arrow::Schema> schema)
      : sink_(sink), schema_(std::move(schema)) {
    for (const auto& field : schema_->fields()) {
      std::string key;
      AppendString(field->name(), &key);
      key.push_back(':');
      keys_.push_back(std::move(key));
    }
  }

  arrow::Status WriteRecordBatch(const arrow::RecordBatch& batch) override {
    if (!batch.schema()->Equals(*schema_, /*check_metadata=*/false)) {
      return arrow::Status::Invalid("JSON lines: batch schema differs from the stream's");
    }
    // Whole columns of temporal and decimal types are cast to text at once.
    std::vector<std::shared_ptr<arrow::Array>> columns;
    for (int c = 0; c < batch.num_columns(); ++c) {
      auto column = batch.column(c);
      if (NeedsText(*column->type())) {
        auto text = arrow::compute::Cast(*column, arrow::utf8());
        if (text.ok()) column = std::move(*text);  // else: per value, below
      }
      columns.push_back(std::move(column));
    }
    std::string buf;
    for (int64_t row = 0; row < batch.num_rows(); ++row) {
      buf.push_back('{');
      for (size_t c = 0; c < columns.size(); ++c) {
        if (c > 0) buf.push_back(',');
        buf.append(keys_[c]);
        ARROW_RETURN_NOT_OK(AppendValue(*columns[c], row, &buf));
      }
      buf.append("}\n");
      if (buf.size() >= kFlushBytes) {
        ARROW_RETURN_NOT_OK(sink_->Write(buf.data(), static_cast<int64_t>(buf.size())));
        buf.clear();
      }
    }
    if (!buf.empty()) {
      ARROW_RETURN_NOT_OK(sink_->Write(buf.data(), static_cast<int64_t>(buf.size())));
    }
    ++stats_.num_record_batches;
    return arrow::Status::OK();
  }

  arrow::Status Close() override { return arrow::Status::OK(); }
  arrow::ipc::WriteStats stats() const override { return stats_; }

 private:
  arrow::io::OutputStream* sink_;
  std::shared_ptr<arrow::Schema> schema_;
  std::vector<std::string> keys_;  // "name": per column, escaped once
  arrow::ipc::WriteStats stats_;
};

}  // namespace

arrow::Result<std::shared_ptr<arrow::ipc::RecordBatchWriter>> MakeJsonLinesWriter(
    arrow::io::OutputStream* sink, std::shared_ptr<arrow::Schema> schema) {
  ARROW_RETURN_NOT_OK(InitializeCompute());
  return std::make_shared<JsonLinesWriter>(sink, std::move(schema));
}

}  // namespace quiver
