#include "exec/table_view.h"

#include <arrow/api.h>
#include <arrow/json/from_string.h>
#include <gtest/gtest.h>

#include "common/testing.h"

namespace quiver {
namespace {

// Three batches of ids 0..29, price = id * 1.5, region cycling EU/US/APAC.
std::shared_ptr<arrow::Table> Table() {
  auto schema = arrow::schema({arrow::field("id", arrow::int64()),
                               arrow::field("price", arrow::float64()),
                               arrow::field("region", arrow::utf8())},
                              arrow::key_value_metadata({"origin"}, {"test"}));
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  const char* regions[] = {"EU", "US", "APAC"};
  for (int b = 0; b < 3; ++b) {
    arrow::Int64Builder id;
    arrow::DoubleBuilder price;
    arrow::StringBuilder region;
    for (int i = b * 10; i < b * 10 + 10; ++i) {
      EXPECT_OK(id.Append(i));
      EXPECT_OK(price.Append(i * 1.5));
      EXPECT_OK(region.Append(regions[i % 3]));
    }
    batches.push_back(arrow::RecordBatch::Make(
        schema, 10, {*id.Finish(), *price.Finish(), *region.Finish()}));
  }
  return *arrow::Table::FromRecordBatches(schema, batches);
}

std::shared_ptr<arrow::RecordBatchReader> Reader() {
  return std::make_shared<arrow::TableBatchReader>(Table());
}

std::shared_ptr<arrow::Table> View(const ViewSpec& view) {
  auto reader = ApplyView(Reader(), view);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  if (!reader.ok()) return nullptr;
  auto table = (*reader)->ToTable();
  EXPECT_TRUE(table.ok()) << table.status().ToString();
  return table.ok() ? *table : nullptr;
}

std::vector<int64_t> Ids(const std::shared_ptr<arrow::Table>& t) {
  std::vector<int64_t> out;
  auto col = t->GetColumnByName("id");
  for (const auto& chunk : col->chunks()) {
    auto ids = std::static_pointer_cast<arrow::Int64Array>(chunk);
    for (int64_t i = 0; i < ids->length(); ++i) out.push_back(ids->Value(i));
  }
  return out;
}

TEST(TableViewTest, EmptyViewIsTheTable) {
  ViewSpec view;
  EXPECT_TRUE(view.empty());
  EXPECT_EQ(view.CanonicalJson(), "{}");
  auto t = View(view);
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->Equals(*Table(), /*check_metadata=*/true));
}

TEST(TableViewTest, SliceAcrossBatchesStopsAtTheLimit) {
  ViewSpec view;
  view.offset = 8;
  view.limit = 5;
  auto t = View(view);
  ASSERT_TRUE(t);
  EXPECT_EQ(Ids(t), (std::vector<int64_t>{8, 9, 10, 11, 12}));
  view.offset = 100;
  EXPECT_EQ(View(view)->num_rows(), 0);
  view.offset = 0;
  view.limit = 0;
  EXPECT_EQ(View(view)->num_rows(), 0);
}

TEST(TableViewTest, ProjectionFilterAndSlice) {
  ViewSpec view;
  view.columns = {"region", "id"};
  view.filter = "region = 'EU' and price > 10";
  view.offset = 1;
  view.limit = 3;
  auto t = View(view);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->schema()->field_names(), (std::vector<std::string>{"region", "id"}));
  EXPECT_EQ(Ids(t), (std::vector<int64_t>{12, 15, 18}));  // EU ids > 6: 9, 12, 15, 18, ...
  ASSERT_TRUE(t->schema()->metadata());
  EXPECT_EQ(t->schema()->metadata()->Get("origin").ValueOr(""), "test");
}

TEST(TableViewTest, SortIsStableAndAppliesBeforeTheSlice) {
  ViewSpec view;
  view.columns = {"id"};  // sorts by columns it does not return
  view.sort = {SortKey{"region", false}, SortKey{"price", true}};
  view.limit = 4;
  auto t = View(view);
  ASSERT_TRUE(t);
  EXPECT_EQ(Ids(t), (std::vector<int64_t>{29, 26, 23, 20}));  // APAC, highest price first
  view.sort = {SortKey{"region", true}};
  view.offset = 2;
  view.limit = 2;
  EXPECT_EQ(Ids(View(view)), (std::vector<int64_t>{7, 10}));  // US 1, 4, 7, 10 ...: stable
}

TEST(TableViewTest, TopKWithASmallLimitEqualsTheFullSort) {
  // 30 rows; a limit of 3 takes the top-k path, a limit of 30 the full sort.
  for (auto key : {SortKey{"region", false}, SortKey{"region", true}, SortKey{"price", true}}) {
    ViewSpec all;
    all.sort = {key};
    auto full = View(all);
    ViewSpec top = all;
    top.offset = 1;
    top.limit = 3;
    auto ids = Ids(full);
    EXPECT_EQ(Ids(View(top)), std::vector<int64_t>(ids.begin() + 1, ids.begin() + 4))
        << key.column << (key.descending ? " desc" : "");
  }
}

TEST(TableViewTest, InvalidViewsNameTheProblem) {
  auto schema = Table()->schema();
  ViewSpec view;
  view.columns = {"id", "nope"};
  auto st = ValidateView(view, *schema);
  EXPECT_NE(st.message().find("unknown column 'nope'"), std::string::npos) << st.ToString();
  view.columns = {"id", "id"};
  EXPECT_NE(ValidateView(view, *schema).message().find("listed twice"), std::string::npos);
  view.columns = {};
  view.sort = {SortKey{"nope", false}};
  EXPECT_NE(ValidateView(view, *schema).message().find("sort: unknown column"),
            std::string::npos);
  view.sort = {};
  view.filter = "id >";
  EXPECT_NE(ValidateView(view, *schema).message().find("filter:"), std::string::npos);
  view.filter = "";
  view.limit = -1;
  EXPECT_NE(ValidateView(view, *schema).message().find("limit must be >= 0"),
            std::string::npos);
  EXPECT_FALSE(ApplyView(Reader(), view).ok());
}

TEST(TableViewTest, SortKeysAndCanonicalJson) {
  ASSERT_OK_AND_ASSIGN(auto k, ParseSortKey("-price"));
  EXPECT_EQ(k, (SortKey{"price", true}));
  ASSERT_OK_AND_ASSIGN(k, ParseSortKey("price DESC"));
  EXPECT_EQ(k, (SortKey{"price", true}));
  ASSERT_OK_AND_ASSIGN(k, ParseSortKey("price asc"));
  EXPECT_EQ(k, (SortKey{"price", false}));
  ASSERT_OK_AND_ASSIGN(k, ParseSortKey("first name"));
  EXPECT_EQ(k, (SortKey{"first name", false}));
  EXPECT_FALSE(ParseSortKey("-").ok());
  ViewSpec a;
  a.limit = 3;
  a.columns = {"x"};
  a.sort = {SortKey{"y", true}};
  EXPECT_EQ(a.CanonicalJson(), R"({"columns":["x"],"limit":3,"sort":["-y"]})");
}

}  // namespace
}  // namespace quiver
