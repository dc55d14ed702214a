#include "exec/filter_expr.h"

#include <arrow/api.h>
#include <arrow/compute/exec.h>
#include <arrow/json/from_string.h>
#include <gtest/gtest.h>

#include "common/testing.h"

namespace quiver {
namespace {

namespace cp = arrow::compute;

std::shared_ptr<arrow::RecordBatch> Batch() {
  auto schema = arrow::schema({arrow::field("price", arrow::float64()),
                               arrow::field("qty", arrow::int32()),
                               arrow::field("region", arrow::utf8()),
                               arrow::field("day", arrow::date32()),
                               arrow::field("ok", arrow::boolean()),
                               arrow::field("odd name", arrow::utf8())});
  auto col = [](std::shared_ptr<arrow::DataType> t, const char* json) {
    return *arrow::json::ArrayFromJSONString(t, json);
  };
  return arrow::RecordBatch::Make(
      schema, 5,
      {col(arrow::float64(), "[5, 10.5, 20, null, 12]"), col(arrow::int32(), "[1, 2, 3, 4, 5]"),
       col(arrow::utf8(), R"(["EU", "US", "EU", "APAC", null])"),
       col(arrow::date32(), "[19723, 19724, 19725, 19726, 19727]"),  // 2024-01-01 ...
       col(arrow::boolean(), "[true, false, true, null, false]"),
       col(arrow::utf8(), R"(["it's", "x", "y", "z", "w"])")});
}

// The row numbers (qty - 1) the filter keeps.
std::vector<int> Rows(const std::string& filter) {
  auto batch = Batch();
  auto expr = ParseFilter(filter, *batch->schema());
  EXPECT_TRUE(expr.ok()) << filter << ": " << expr.status().ToString();
  if (!expr.ok()) return {-1};
  auto mask = cp::ExecuteScalarExpression(*expr, cp::ExecBatch(*batch));
  EXPECT_TRUE(mask.ok()) << mask.status().ToString();
  std::vector<int> rows;
  if (mask->is_scalar()) {
    if (mask->scalar()->is_valid && mask->scalar_as<arrow::BooleanScalar>().value) {
      return {0, 1, 2, 3, 4};
    }
    return rows;
  }
  auto bools = std::static_pointer_cast<arrow::BooleanArray>(mask->make_array());
  for (int i = 0; i < bools->length(); ++i) {
    if (bools->IsValid(i) && bools->Value(i)) rows.push_back(i);
  }
  return rows;
}

std::string Error(const std::string& filter) {
  auto expr = ParseFilter(filter, *Batch()->schema());
  EXPECT_FALSE(expr.ok()) << filter << " parsed";
  EXPECT_TRUE(expr.status().IsInvalid()) << expr.status().ToString();
  return expr.status().message();
}

TEST(FilterExprTest, Comparisons) {
  EXPECT_EQ(Rows("price > 10"), (std::vector<int>{1, 2, 4}));
  EXPECT_EQ(Rows("price >= 20"), (std::vector<int>{2}));
  EXPECT_EQ(Rows("qty = 2"), (std::vector<int>{1}));
  EXPECT_EQ(Rows("qty == 2"), (std::vector<int>{1}));
  EXPECT_EQ(Rows("qty <> 2"), (std::vector<int>{0, 2, 3, 4}));
  EXPECT_EQ(Rows("region != 'EU'"), (std::vector<int>{1, 3}));  // null is not kept
  EXPECT_EQ(Rows("10 < price"), (std::vector<int>{1, 2, 4}));
  EXPECT_EQ(Rows("qty < 2.5"), (std::vector<int>{0, 1}));        // promoted, not truncated
  EXPECT_EQ(Rows("price > -1e1"), (std::vector<int>{0, 1, 2, 4}));
  EXPECT_EQ(Rows("qty > price"), (std::vector<int>{}));           // column vs column
}

TEST(FilterExprTest, LogicParenthesesAndKeywords) {
  EXPECT_EQ(Rows("price > 10 and (region = 'EU' or region = 'US')"), (std::vector<int>{1, 2}));
  EXPECT_EQ(Rows("price > 10 AND region = 'EU' OR qty = 1"), (std::vector<int>{0, 2}));
  EXPECT_EQ(Rows("not (qty > 2)"), (std::vector<int>{0, 1}));
  EXPECT_EQ(Rows("not not qty = 1"), (std::vector<int>{0}));
  EXPECT_EQ(Rows("ok"), (std::vector<int>{0, 2}));
  EXPECT_EQ(Rows("ok = false"), (std::vector<int>{1, 4}));
  EXPECT_EQ(Rows("true"), (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(FilterExprTest, NullsInAndStringsAndDates) {
  EXPECT_EQ(Rows("price is null"), (std::vector<int>{3}));
  EXPECT_EQ(Rows("region is not null"), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(Rows("qty in (1, 3, 5)"), (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(Rows("qty not in (1, 3, 5)"), (std::vector<int>{1, 3}));
  EXPECT_EQ(Rows("region in ('US', 'APAC')"), (std::vector<int>{1, 3}));
  EXPECT_EQ(Rows("\"odd name\" = 'it''s'"), (std::vector<int>{0}));
  EXPECT_EQ(Rows("day >= '2024-01-03'"), (std::vector<int>{2, 3, 4}));  // cast to date32
}

TEST(FilterExprTest, ErrorsNameTheProblem) {
  EXPECT_NE(Error("prise > 10").find("unknown column 'prise'"), std::string::npos);
  EXPECT_NE(Error("prise > 10").find("columns: price, qty"), std::string::npos);
  EXPECT_NE(Error("price > ").find("position 9"), std::string::npos);
  EXPECT_NE(Error("price > 10 and").find("the end of the filter"), std::string::npos);
  EXPECT_NE(Error("(price > 10").find("expected ')'"), std::string::npos);
  EXPECT_NE(Error("price > 10)").find("position 11"), std::string::npos);
  EXPECT_NE(Error("region = 'EU").find("unterminated string"), std::string::npos);
  EXPECT_NE(Error("price ; 1").find("unexpected character ';'"), std::string::npos);
  EXPECT_NE(Error("price = null").find("is null"), std::string::npos);
  EXPECT_NE(Error("price").find("not a condition"), std::string::npos);
  EXPECT_NE(Error("qty in (1, 'x')").find("'x'"), std::string::npos);
  EXPECT_NE(Error("qty in (price)").find("not columns"), std::string::npos);
  EXPECT_NE(Error("ok = 'maybe'").find("cannot compare column 'ok'"), std::string::npos);
  EXPECT_NE(Error("price ! 1").find("'!'"), std::string::npos);
  EXPECT_NE(Error("99999999999999999999 = qty").find("out of range"), std::string::npos);
  EXPECT_NE(Error("").find("empty"), std::string::npos);
}

TEST(FilterExprTest, LimitsAreEnforced) {
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "(";
  deep += "qty = 1";
  for (int i = 0; i < 40; ++i) deep += ")";
  EXPECT_NE(Error(deep).find("nested more than"), std::string::npos);
  std::string nots;
  for (int i = 0; i < 1000; ++i) nots += "not ";
  EXPECT_NE(Error(nots + "ok").find("nested more than"), std::string::npos);
  EXPECT_NE(Error(std::string(kMaxFilterLength + 1, ' ')).find("longer than"), std::string::npos);
  std::string list = "qty in (1";
  for (size_t i = 0; i < kMaxInItems; ++i) list += ", 1";
  EXPECT_NE(Error(list + ")").find("values in an 'in' list"), std::string::npos);
}

}  // namespace
}  // namespace quiver
