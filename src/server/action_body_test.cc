#include "server/action_body.h"

#include <gtest/gtest.h>

#include "common/testing.h"

namespace quiver {
namespace {

// The error of a body that must be refused; fails the test if it was accepted.
template <typename T>
std::string Refusal(const arrow::Result<T>& result) {
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(result.status().IsInvalid()) << result.status().ToString();
  return result.status().message();
}

TEST(ActionBodyTest, SingleArgumentActionsTakeJsonOrTheBareArgument) {
  ASSERT_OK_AND_ASSIGN(auto key, ParseKeyBody(R"({"key": "s/o"})"));
  EXPECT_EQ(key, "s/o");
  ASSERT_OK_AND_ASSIGN(key, ParseKeyBody("s/o"));
  EXPECT_EQ(key, "s/o");
  ASSERT_OK_AND_ASSIGN(auto prefix, ParsePrefixBody("session"));
  EXPECT_EQ(prefix, "session");
  ASSERT_OK_AND_ASSIGN(auto tag, ParseTagBody(R"({"tag": "daily"})"));
  EXPECT_EQ(tag, "daily");
  EXPECT_NE(Refusal(ParseKeyBody(R"({"prefix": "s"})")).find("\"key\""), std::string::npos);
  EXPECT_NE(Refusal(ParseKeyBody(R"({"key": 3})")).find("\"key\""), std::string::npos);
  EXPECT_NE(Refusal(ParseTagBody(R"({"tag": ""})")).find("'tag' must not be empty"),
            std::string::npos);
  EXPECT_NE(Refusal(ParsePrefixBody("{not json")).find("JSON object"), std::string::npos);
}

TEST(ActionBodyTest, EntriesPrefixIsOptional) {
  ASSERT_OK_AND_ASSIGN(auto prefix, ParseEntriesBody(""));
  EXPECT_EQ(prefix, "");
  ASSERT_OK_AND_ASSIGN(prefix, ParseEntriesBody(R"({"prefix": "a/b"})"));
  EXPECT_EQ(prefix, "a/b");
  EXPECT_NE(Refusal(ParseEntriesBody(R"({"prefix": ["a"]})")).find("'prefix' must be a string"),
            std::string::npos);
  EXPECT_NE(Refusal(ParseEntriesBody("[1, 2]")).find("JSON object"), std::string::npos);
}

TEST(ActionBodyTest, ShrinkTakesOneOrBelowBytes) {
  ASSERT_OK_AND_ASSIGN(auto one, ParseShrinkBody(R"({"one": true})"));
  EXPECT_FALSE(one.below_bytes.has_value());
  ASSERT_OK_AND_ASSIGN(auto below, ParseShrinkBody(R"({"below_bytes": "2KiB", "dry_run": true})"));
  EXPECT_EQ(below.below_bytes, 2048);
  EXPECT_TRUE(below.dry_run);
  ASSERT_OK_AND_ASSIGN(below, ParseShrinkBody(R"({"below_bytes": 100})"));
  EXPECT_EQ(below.below_bytes, 100);
  EXPECT_FALSE(below.dry_run);
  // Neither, both, or a bad field: each is refused, naming what is wrong.
  EXPECT_NE(Refusal(ParseShrinkBody("{}")).find("shrink takes"), std::string::npos);
  EXPECT_NE(Refusal(ParseShrinkBody(R"({"one": true, "below_bytes": 1})")).find("shrink takes"),
            std::string::npos);
  EXPECT_NE(Refusal(ParseShrinkBody(R"({"one": "yes"})")).find("'one' must be true or false"),
            std::string::npos);
  EXPECT_NE(Refusal(ParseShrinkBody(R"({"below_bytes": "lots"})")).find("'below_bytes'"),
            std::string::npos);
  EXPECT_NE(Refusal(ParseShrinkBody(R"({"below_bytes": 1.5})")).find("'below_bytes'"),
            std::string::npos);
}

TEST(ActionBodyTest, InvalidateChecksTheKeyAndCascade) {
  ASSERT_OK_AND_ASSIGN(auto bare, ParseInvalidateBody("s/o"));
  EXPECT_EQ(bare.key, "s/o");
  EXPECT_TRUE(bare.cascade);
  ASSERT_OK_AND_ASSIGN(auto j, ParseInvalidateBody(R"({"key": "n/s/o", "cascade": false})"));
  EXPECT_EQ(j.key, "n/s/o");
  EXPECT_FALSE(j.cascade);
  EXPECT_FALSE(ParseInvalidateBody("only-one-segment").ok());
  EXPECT_NE(Refusal(ParseInvalidateBody(R"({"key": "s/o", "cascade": 1})")).find("'cascade'"),
            std::string::npos);
}

TEST(ActionBodyTest, ConfigSetChecksNamesAndRanges) {
  ASSERT_OK_AND_ASSIGN(auto s,
                       ParseConfigSetBody(R"({"half_life": 50, "cache_size": "1MiB"})"));
  EXPECT_EQ(s.half_life, 50.0);
  EXPECT_EQ(s.cache_size, int64_t{1} << 20);
  EXPECT_FALSE(s.memory_size.has_value());
  EXPECT_NE(Refusal(ParseConfigSetBody(R"({"budget": 1})")).find("unknown setting 'budget'"),
            std::string::npos);
  EXPECT_NE(Refusal(ParseConfigSetBody(R"({"cache_size": 0})")).find("cache_size must be > 0"),
            std::string::npos);
  EXPECT_NE(Refusal(ParseConfigSetBody(R"({"half_life": "x"})")).find("'half_life'"),
            std::string::npos);
}

TEST(ActionBodyTest, EveryTypeIsDispatchedToItsParser) {
  EXPECT_TRUE(ParseActionBody("shrink", "{}").IsInvalid());
  EXPECT_TRUE(ParseActionBody("config-set", R"({"nope": 1})").IsInvalid());
  EXPECT_TRUE(ParseActionBody("invalidate-tag", "").IsInvalid());
  EXPECT_OK(ParseActionBody("delete", "s/o"));
  // Actions without a body, and unknown ones (RunAction refuses those), parse as OK.
  EXPECT_OK(ParseActionBody("stats", "anything"));
  EXPECT_OK(ParseActionBody("no-such-action", "{"));
}

}  // namespace
}  // namespace quiver
