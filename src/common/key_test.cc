#include "common/key.h"

#include <gtest/gtest.h>

namespace quiver {
namespace {

TEST(ObjectKey, AcceptsTwoAndThreeSegments) {
  auto k2 = ObjectKey::Parse("session-1/obj.v2_x");
  ASSERT_TRUE(k2.ok()) << k2.status();
  EXPECT_EQ(k2->segments().size(), 2u);
  EXPECT_EQ(k2->ToString(), "session-1/obj.v2_x");
  auto k3 = ObjectKey::Parse("ns/s/o");
  ASSERT_TRUE(k3.ok());
  EXPECT_EQ(k3->segments(), (std::vector<std::string>{"ns", "s", "o"}));
}

TEST(ObjectKey, RejectsBadShapes) {
  for (const char* bad : {"", "one", "a/b/c/d", "a//b", "/a/b", "a/b/", "../b", "a/..",
                          "a/.", "a/b c", "a/b@1", "a/b?x", "a/\xff", "a\\b/c"}) {
    auto k = ObjectKey::Parse(bad);
    EXPECT_FALSE(k.ok()) << "accepted '" << bad << "'";
    EXPECT_TRUE(k.status().IsInvalid());
  }
}

TEST(ObjectKey, ErrorNamesTheBadSegment) {
  auto k = ObjectKey::Parse("good/b$d");
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("'b$d'"), std::string::npos) << k.status();
  auto dots = ObjectKey::Parse("s/..");
  EXPECT_NE(dots.status().message().find("'..'"), std::string::npos) << dots.status();
}

TEST(ObjectKey, SegmentLengthLimit) {
  std::string ok(kMaxSegmentLength, 'a');
  EXPECT_TRUE(ObjectKey::Parse("s/" + ok).ok());
  auto k = ObjectKey::Parse("s/" + ok + "a");
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("129 characters"), std::string::npos) << k.status();
}

TEST(ObjectKey, FromSegmentsValidates) {
  EXPECT_TRUE(ObjectKey::FromSegments({"a", "b"}).ok());
  EXPECT_FALSE(ObjectKey::FromSegments({"a"}).ok());
  EXPECT_FALSE(ObjectKey::FromSegments({"a", "b/c"}).ok());
  EXPECT_FALSE(ObjectKey::FromSegments({"a", ""}).ok());
}

TEST(KeyPrefix, WholeSegments) {
  EXPECT_TRUE(ParseKeyPrefix("sess").ok());
  EXPECT_TRUE(ParseKeyPrefix("ns/sess").ok());
  EXPECT_FALSE(ParseKeyPrefix("").ok());
  EXPECT_FALSE(ParseKeyPrefix("a/../b").ok());
  EXPECT_TRUE(KeyHasSegmentPrefix("sess/obj", "sess"));
  EXPECT_FALSE(KeyHasSegmentPrefix("session/obj", "sess"));
  EXPECT_TRUE(KeyHasSegmentPrefix("a/b", "a/b"));
}

}  // namespace
}  // namespace quiver
