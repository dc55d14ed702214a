#include "exec/params.h"

#include <arrow/builder.h>
#include <arrow/scalar.h>
#include <nlohmann/json.hpp>

namespace quiver {

arrow::Result<std::shared_ptr<arrow::RecordBatch>> ParamsFromJson(const std::string& json_array) {
  auto j = nlohmann::json::parse(json_array, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array()) {
    return arrow::Status::Invalid("query params must be a JSON array, e.g. [42, \"x\"]");
  }
  if (j.empty()) return nullptr;
  arrow::FieldVector fields;
  arrow::ArrayVector columns;
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& v = j[i];
    std::shared_ptr<arrow::Scalar> scalar;
    if (v.is_boolean()) {
      scalar = arrow::MakeScalar(v.get<bool>());
    } else if (v.is_number_integer()) {
      scalar = arrow::MakeScalar(v.get<int64_t>());
    } else if (v.is_number()) {
      scalar = arrow::MakeScalar(v.get<double>());
    } else if (v.is_string()) {
      scalar = arrow::MakeScalar(v.get<std::string>());
    } else if (v.is_null()) {
      scalar = arrow::MakeNullScalar(arrow::utf8());
    } else {
      return arrow::Status::Invalid("query param ", i + 1, " is ", v.type_name(),
                                    "; params must be scalars (number, string, bool, null)");
    }
    ARROW_ASSIGN_OR_RAISE(auto column, arrow::MakeArrayFromScalar(*scalar, 1));
    fields.push_back(arrow::field(std::to_string(i + 1), scalar->type));
    columns.push_back(std::move(column));
  }
  return arrow::RecordBatch::Make(arrow::schema(fields), 1, columns);
}

}  // namespace quiver
