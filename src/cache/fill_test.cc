#include "cache/fill.h"

#include <gtest/gtest.h>

#include <thread>

#include <arrow/buffer.h>
#include <arrow/type.h>

#include "common/testing.h"

namespace quiver {
namespace {

arrow::ipc::IpcPayload Payload(int tag) {
  arrow::ipc::IpcPayload p;
  p.type = arrow::ipc::MessageType::RECORD_BATCH;
  p.metadata = arrow::Buffer::FromString(std::to_string(tag));
  return p;
}

int Tag(const arrow::ipc::IpcPayload& p) { return std::stoi(p.metadata->ToString()); }

TEST(Fill, LateJoinerReadsFromTheFirstPayloadLive) {
  Fill fill("k", /*joinable=*/true);
  auto first = *fill.Attach();
  fill.SetSchema(arrow::schema({}), Payload(-1));
  fill.Append(Payload(0));
  fill.Append(Payload(1));
  auto late = *fill.Attach();
  std::vector<int> seen;
  std::thread reader([&] {
    while (true) {
      auto next = fill.WaitNext(late);
      ASSERT_TRUE(next.ok());
      if (!*next) break;
      seen.push_back(Tag(**next));
    }
  });
  fill.Append(Payload(2));
  fill.Finish(arrow::Status::OK());
  reader.join();
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2}));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Tag(**fill.WaitNext(first)), i);
  EXPECT_FALSE(fill.WaitNext(first)->has_value());
}

TEST(Fill, KeepsAtMostItsLimitForLateJoiners) {
  Fill fill("k", /*joinable=*/true, /*max_kept_bytes=*/2 * 1024);
  fill.NotCaching("the index is unavailable");
  auto reader = *fill.Attach();
  fill.SetSchema(arrow::schema({}), Payload(-1));
  auto big = [](int tag) {
    auto p = Payload(tag);
    p.body_length = 1000;
    return p;
  };
  fill.Append(big(0));
  fill.Append(big(1));
  EXPECT_TRUE(fill.joinable()) << "not cached, but still shared within the limit";
  EXPECT_TRUE(fill.Attach().has_value());
  fill.Append(big(2));  // past 2 KiB
  EXPECT_FALSE(fill.joinable());
  EXPECT_FALSE(fill.Attach().has_value());
  EXPECT_EQ(fill.not_cached_reason(), "the index is unavailable") << "the first reason stays";
  // The readers already attached still get everything.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Tag(**fill.WaitNext(reader)), i);
}

TEST(Fill, ErrorReachesEveryReader) {
  Fill fill("k", true);
  auto a = *fill.Attach();
  auto b = *fill.Attach();
  fill.Append(Payload(0));
  fill.Finish(arrow::Status::IOError("source died"));
  EXPECT_EQ(Tag(**fill.WaitNext(a)), 0);
  EXPECT_TRUE(fill.WaitNext(a).status().IsIOError());
  EXPECT_EQ(Tag(**fill.WaitNext(b)), 0);
  EXPECT_TRUE(fill.WaitNext(b).status().IsIOError());
  EXPECT_TRUE(fill.WaitSchema().status().IsIOError());
  EXPECT_FALSE(fill.Attach().has_value()) << "a failed fill must not be joined";
}

TEST(Fill, StopCachingRefusesJoinersAndFreesConsumedPayloads) {
  Fill fill("k", true);
  auto a = *fill.Attach();
  fill.Append(Payload(0));
  fill.Append(Payload(1));
  fill.StopCaching("too big");
  EXPECT_FALSE(fill.joinable());
  EXPECT_EQ(fill.not_cached_reason(), "too big");
  EXPECT_FALSE(fill.Attach().has_value());
  EXPECT_EQ(Tag(**fill.WaitNext(a)), 0);
  EXPECT_EQ(Tag(**fill.WaitNext(a)), 1);
}

TEST(Fill, AbandonedOnlyAfterEveryReaderLeft) {
  Fill fill("k", true);
  EXPECT_FALSE(fill.Abandoned());
  auto a = *fill.Attach();
  auto b = *fill.Attach();
  fill.Detach(a);
  EXPECT_FALSE(fill.Abandoned());
  fill.Detach(b);
  EXPECT_TRUE(fill.Abandoned());
  fill.Finish(arrow::Status::OK());
  EXPECT_FALSE(fill.Abandoned());
}

TEST(Fill, AHandOverIsNotAbandonmentUntilTheNextReaderLeaves) {
  Fill fill("k", true);
  auto info = *fill.Attach();  // GetFlightInfo waits for the schema...
  fill.HandOver(info);         // ...and leaves the stream to the DoGet that follows
  EXPECT_FALSE(fill.Abandoned());
  auto get = *fill.Attach();
  EXPECT_FALSE(fill.Abandoned());
  fill.Detach(get);
  EXPECT_TRUE(fill.Abandoned());

  Fill too_big("k2", true);
  too_big.HandOver(*too_big.Attach());
  too_big.StopCaching("larger than max_entry_bytes");  // the DoGet cannot join any more
  EXPECT_TRUE(too_big.Abandoned());
}

}  // namespace
}  // namespace quiver
