#include "server/ticket.h"

#include <gtest/gtest.h>

namespace quiver {
namespace {

TEST(ObjectTicket, PlainAndVersioned) {
  auto t = ObjectTicket::Parse("s/o");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->key.ToString(), "s/o");
  EXPECT_FALSE(t->version.has_value());
  auto v = ObjectTicket::Parse("ns/s/o@12");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v->version, 12u);
  for (const char* bad : {"", "s/o@", "s/o@0", "s/o@-1", "s/o@1x", "s@1", "s/o@@1"}) {
    EXPECT_FALSE(ObjectTicket::Parse(bad).ok()) << bad;
  }
}

TEST(ObjectTicket, Json) {
  auto t = ObjectTicket::Parse(R"({"key": "s/o", "version": 3, "if_none_match": 2})");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t->version, 3u);
  EXPECT_EQ(*t->if_none_match, 2u);
  EXPECT_FALSE(ObjectTicket::Parse(R"({"key": "s/o", "if_none_match": -1})").ok());
  EXPECT_FALSE(ObjectTicket::Parse(R"({"key": "s/../o"})").ok());
  EXPECT_FALSE(ObjectTicket::Parse(R"({"version": 1})").ok());
  auto unknown = ObjectTicket::Parse(R"({"key": "s/o", "colour": 1})");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("colour"), std::string::npos);
  EXPECT_FALSE(ObjectTicket::Parse("{broken").ok());
}

}  // namespace
}  // namespace quiver
