// RedisUrl: parsing redis:// and rediss:// URLs, and never showing a password.
#include <gtest/gtest.h>

#include "common/testing.h"
#include "redis/redis_client.h"

namespace quiver::redis {
namespace {

TEST(RedisUrlTest, ParsesGoodUrls) {
  ASSERT_OK_AND_ASSIGN(auto plain, RedisUrl::Parse("redis://127.0.0.1"));
  EXPECT_FALSE(plain.tls);
  EXPECT_EQ(plain.host, "127.0.0.1");
  EXPECT_EQ(plain.port, 6379);
  EXPECT_EQ(plain.db, 0);
  EXPECT_TRUE(plain.user.empty());
  EXPECT_TRUE(plain.password.empty());

  ASSERT_OK_AND_ASSIGN(auto full,
                       RedisUrl::Parse("rediss://quiver:p%40ss%3Aw/rd@cache.example:6380/2"));
  EXPECT_TRUE(full.tls);
  EXPECT_EQ(full.host, "cache.example");
  EXPECT_EQ(full.port, 6380);
  EXPECT_EQ(full.db, 2);
  EXPECT_EQ(full.user, "quiver");
  EXPECT_EQ(full.password, "p@ss:w/rd");

  ASSERT_OK_AND_ASSIGN(auto password_only, RedisUrl::Parse("REDIS://:secret@h/"));
  EXPECT_EQ(password_only.user, "");
  EXPECT_EQ(password_only.password, "secret");
  EXPECT_EQ(password_only.db, 0);

  ASSERT_OK_AND_ASSIGN(auto v6, RedisUrl::Parse("redis://[::1]:7000/15"));
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.port, 7000);
  EXPECT_EQ(v6.db, 15);
  ASSERT_OK_AND_ASSIGN(auto v6_default, RedisUrl::Parse("redis://[fe80::1]"));
  EXPECT_EQ(v6_default.host, "fe80::1");
  EXPECT_EQ(v6_default.port, 6379);

  ASSERT_OK_AND_ASSIGN(auto edge, RedisUrl::Parse("redis://h:65535/0"));
  EXPECT_EQ(edge.port, 65535);
}

TEST(RedisUrlTest, RejectsBadUrls) {
  const char* bad[] = {
      "",
      "127.0.0.1:6379",
      "redis://",
      "redis://:6379",
      "redis://h:0",
      "redis://h:65536",
      "redis://h:",
      "redis://h:63a",
      "redis://h:-1",
      "redis://h/-1",
      "redis://h/x",
      "redis://h/1/2",
      "redis://::1:6379",
      "redis://[::1",
      "redis://[::1]x",
      "redis://h?timeout=1",
      "redis://u:bad%zzpct@h",
  };
  for (const char* url : bad) {
    auto parsed = RedisUrl::Parse(url);
    EXPECT_FALSE(parsed.ok()) << "accepted '" << url << "'";
    if (!parsed.ok()) {
      EXPECT_TRUE(parsed.status().IsInvalid()) << parsed.status().ToString();
    }
  }
  auto http = RedisUrl::Parse("http://user:hunter2@h:80");
  ASSERT_FALSE(http.ok());
  EXPECT_NE(http.status().message().find("'http'"), std::string::npos) << http.status();
  // A forgotten "@host" puts the password where the port goes: it must not be echoed.
  for (const char* url : {"http://user:hunter2@h:80", "redis://user:hunter2/0",
                          "redis://user:hunter2@h:hunter2", "rediss://u:hunter2@[::1"}) {
    auto parsed = RedisUrl::Parse(url);
    ASSERT_FALSE(parsed.ok()) << url;
    EXPECT_EQ(parsed.status().ToString().find("hunter2"), std::string::npos)
        << parsed.status().ToString();
  }
}

TEST(RedisUrlTest, RedactedHidesThePassword) {
  ASSERT_OK_AND_ASSIGN(auto url, RedisUrl::Parse("rediss://quiver:hunter2@127.0.0.1:6390/3"));
  EXPECT_EQ(url.Redacted(), "rediss://quiver:***@127.0.0.1:6390/3");
  ASSERT_OK_AND_ASSIGN(auto password_only, RedisUrl::Parse("redis://:hunter2@[::1]"));
  EXPECT_EQ(password_only.Redacted(), "redis://:***@[::1]:6379/0");
  ASSERT_OK_AND_ASSIGN(auto none, RedisUrl::Parse("redis://h"));
  EXPECT_EQ(none.Redacted(), "redis://h:6379/0");
  // What Redacted() prints parses back to the same place.
  ASSERT_OK_AND_ASSIGN(auto again, RedisUrl::Parse(url.Redacted()));
  EXPECT_EQ(again.host, url.host);
  EXPECT_EQ(again.port, url.port);
  EXPECT_EQ(again.db, url.db);
  EXPECT_EQ(again.user, url.user);
}

TEST(RedisUrlTest, HostPortBracketsIpv6) {
  ASSERT_OK_AND_ASSIGN(auto v6, RedisUrl::Parse("redis://[::1]:6380"));
  EXPECT_EQ(v6.HostPort(), "[::1]:6380");
  ASSERT_OK_AND_ASSIGN(auto v4, RedisUrl::Parse("redis://127.0.0.1"));
  EXPECT_EQ(v4.HostPort(), "127.0.0.1:6379");
}

}  // namespace
}  // namespace quiver::redis
