#include "server/view_request.h"

#include <gtest/gtest.h>

#include "common/testing.h"

namespace quiver {
namespace {

TEST(ViewRequestTest, TellsViewTicketsFromOthers) {
  EXPECT_TRUE(LooksLikeView(R"({"key": "s/o", "limit": 3})"));
  EXPECT_TRUE(LooksLikeView(R"({"key": "s/o", "format": "csv"})"));
  EXPECT_FALSE(LooksLikeView(R"({"key": "s/o", "version": 2})"));  // an object ticket
  EXPECT_FALSE(LooksLikeView(R"({"source": "demo", "sql": "SELECT 1", "limit": 3})"));
  EXPECT_FALSE(LooksLikeView(R"({"artifact": "s3://b/x.csv", "columns": ["a"]})"));
  EXPECT_FALSE(LooksLikeView("s/o@2"));
  EXPECT_FALSE(LooksLikeView("{not json"));
}

TEST(ViewRequestTest, ParsesEveryField) {
  ASSERT_OK_AND_ASSIGN(auto r, ParseViewRequest(
                                   R"({"key": "s/o", "version": 3, "columns": ["a", "b"],
                                       "filter": "a > 1", "sort": ["-a", "b asc"],
                                       "offset": 5, "limit": 10, "format": "parquet"})"));
  EXPECT_EQ(r.key, "s/o");
  EXPECT_EQ(r.version, 3u);
  EXPECT_EQ(r.view.columns, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.view.filter, "a > 1");
  EXPECT_EQ(r.view.sort, (std::vector<SortKey>{{"a", true}, {"b", false}}));
  EXPECT_EQ(r.view.offset, 5);
  EXPECT_EQ(r.view.limit, 10);
  EXPECT_EQ(r.encoding, Encoding::kParquet);
}

TEST(ViewRequestTest, ErrorsNameTheField) {
  auto message = [](const char* ticket) {
    auto r = ParseViewRequest(ticket);
    EXPECT_FALSE(r.ok()) << ticket;
    return r.status().message();
  };
  EXPECT_NE(message(R"({"key": "s/o", "limt": 3})").find("unknown view ticket field 'limt'"),
            std::string::npos);
  EXPECT_NE(message(R"({"key": "s/o", "limit": -1})").find("'limit'"), std::string::npos);
  EXPECT_NE(message(R"({"key": "s/o", "columns": "a"})").find("'columns'"), std::string::npos);
  EXPECT_NE(message(R"({"key": "s/o", "format": "xlsx"})").find("'xlsx'"), std::string::npos);
  EXPECT_NE(message(R"({"key": "s/o", "version": 0})").find("'version'"), std::string::npos);
  EXPECT_NE(message(R"({"columns": ["a"]})").find("'key'"), std::string::npos);
}

TEST(ViewRequestTest, HttpParameters) {
  std::multimap<std::string, std::string> params = {
      {"columns", "a,b"}, {"columns", "c"}, {"filter", "a > 1"}, {"sort", "-a,b desc"},
      {"offset", "5"},    {"limit", "10"},  {"format", "csv"},   {"version", "2"}};
  ASSERT_OK_AND_ASSIGN(auto r, ParseViewParams("s/o", params));
  EXPECT_EQ(r.key, "s/o");
  EXPECT_EQ(r.version, 2u);
  EXPECT_EQ(r.view.columns, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(r.view.sort, (std::vector<SortKey>{{"a", true}, {"b", true}}));
  EXPECT_EQ(r.view.offset, 5);
  EXPECT_EQ(r.view.limit, 10);
  EXPECT_EQ(r.encoding, Encoding::kCsv);
  auto message = [](std::multimap<std::string, std::string> p) {
    auto r = ParseViewParams("s/o", p);
    EXPECT_FALSE(r.ok());
    return r.status().message();
  };
  EXPECT_NE(message({{"limt", "1"}}).find("unknown parameter 'limt'"), std::string::npos);
  EXPECT_NE(message({{"limit", "x"}}).find("'limit'"), std::string::npos);
  EXPECT_NE(message({{"limit", "1"}, {"limit", "2"}}).find("twice"), std::string::npos);
  EXPECT_NE(message({{"columns", "a,,b"}}).find("empty item"), std::string::npos);
  EXPECT_TRUE(ParseViewParams("s/o", {{"token", "x"}}, {"token"}).ok());
}

}  // namespace
}  // namespace quiver
