#include "common/rejection.h"

#include <gtest/gtest.h>

namespace quiver {
namespace {

TEST(RejectionTest, TravelsWithTheStatusAndKeepsItsCode) {
  auto st = Reject(arrow::Status::CapacityError("too big"), RejectionKind::kTooLarge,
                   "max_object_bytes", 1024);
  ASSERT_TRUE(st.IsCapacityError());
  EXPECT_EQ(st.message(), "too big");
  auto rejection = RejectionOf(st);
  ASSERT_NE(rejection, nullptr);
  EXPECT_EQ(rejection->kind(), RejectionKind::kTooLarge);
  EXPECT_EQ(rejection->ToString(),
            R"({"error":"too_large","limit":1024,"setting":"max_object_bytes"})");
}

TEST(RejectionTest, OmitsWhatIsNotKnownAndIgnoresOtherDetails) {
  auto st = Reject(arrow::Status::CapacityError("no room"), RejectionKind::kNotAdmitted);
  EXPECT_EQ(RejectionOf(st)->ToString(), R"({"error":"not_admitted"})");
  EXPECT_EQ(RejectionOf(arrow::Status::Invalid("plain")), nullptr);
  EXPECT_EQ(RejectionOf(arrow::Status::OK()), nullptr);
  // Another kind of detail on a status is not taken for a rejection.
  struct OtherDetail : arrow::StatusDetail {
    const char* type_id() const override { return "other"; }
    std::string ToString() const override { return "other"; }
  };
  EXPECT_EQ(RejectionOf(arrow::Status::IOError("x").WithDetail(std::make_shared<OtherDetail>())),
            nullptr);
}

}  // namespace
}  // namespace quiver
