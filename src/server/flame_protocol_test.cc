#include "server/flame_protocol.h"

#include <gtest/gtest.h>

#include <arrow/array.h>
#include <arrow/builder.h>
#include <arrow/buffer.h>
#include <arrow/record_batch.h>
#include <arrow/type.h>
#include <arrow/util/key_value_metadata.h>
#include <nlohmann/json.hpp>

#include "common/testing.h"

namespace quiver::flame {
namespace {

namespace fl = arrow::flight;

TEST(FlameKey, ParsesFlamesForms) {
  ASSERT_OK_AND_ASSIGN(auto full, ParseFlameKey("app/ssn-1/3f2a"));
  EXPECT_EQ(full.app, "app");
  EXPECT_EQ(full.session, "ssn-1");
  EXPECT_EQ(*full.object, "3f2a");
  ASSERT_OK_AND_ASSIGN(auto prefix, ParseFlameKey("app/ssn"));
  EXPECT_FALSE(prefix.object.has_value());
  ASSERT_OK_AND_ASSIGN(auto all, ParseFlameKey("app/*"));
  EXPECT_TRUE(all.all_sessions());
  for (const char* bad : {"app", "a/b/c/d", "a//c", "a/../c", "a/b\\c/d", "*/s", "a/*/o",
                          "a/s/*", ""}) {
    EXPECT_FALSE(ParseFlameKey(bad).ok()) << bad;
  }
}

TEST(FlameKey, MapsToQuiverKeysBothWays) {
  ASSERT_OK_AND_ASSIGN(auto plain, ParseFlameKey("my-app/ssn_1/obj.v2"));
  ASSERT_OK_AND_ASSIGN(auto key, ToQuiverKey(plain));
  EXPECT_EQ(key.ToString(), "my-app/ssn_1/obj.v2");  // Quiver's characters: unchanged
  ASSERT_OK_AND_ASSIGN(auto odd, ParseFlameKey("app/ssn:1/o@2"));
  ASSERT_OK_AND_ASSIGN(auto mapped, ToQuiverKey(odd));
  EXPECT_EQ(mapped.ToString(), "app/..73736e3a31/..6f4032");
  auto back = FromQuiverKey(mapped);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->ToString(), "app/ssn:1/o@2");
  EXPECT_FALSE(ToQuiverKey(*ParseFlameKey("app/ssn")).ok());  // a prefix
  EXPECT_FALSE(ToQuiverSegment(std::string(64, ':')).ok());   // too long once encoded
  EXPECT_TRUE(ToQuiverSegment(std::string(63, ':')).ok());
}

TEST(FlameRequests, Recognised) {
  EXPECT_TRUE(IsFlamePath(fl::FlightDescriptor::Path({"app/ssn"})));
  EXPECT_FALSE(IsFlamePath(fl::FlightDescriptor::Path({"ssn", "obj"})));  // Quiver's own
  EXPECT_FALSE(IsFlamePath(fl::FlightDescriptor::Path({"ssn"})));
  EXPECT_TRUE(IsFlamePatch(fl::FlightDescriptor::Command("PATCH:a/s/o")));
  EXPECT_FALSE(IsFlamePatch(fl::FlightDescriptor::Command(R"({"sql": "PATCH:"})")));
  EXPECT_TRUE(IsFlameTicket("a/s/o:0"));
  EXPECT_TRUE(IsFlameTicket("a/s/o:12"));
  for (const char* quiver : {"s/o", "s/o@3", R"({"key": "s/o:1"})", "a/s/o:", "a/s/o:x"}) {
    EXPECT_FALSE(IsFlameTicket(quiver)) << quiver;
  }
}

TEST(FlameTicket, Parses) {
  ASSERT_OK_AND_ASSIGN(auto t, ParseFlameTicket("app/s/o:7"));
  EXPECT_EQ(t.key.ToString(), "app/s/o");
  EXPECT_EQ(t.client_version, 7u);
  ASSERT_OK_AND_ASSIGN(auto odd, ParseFlameTicket("app/s:1/o:0"));  // the last ':' splits
  EXPECT_EQ(*odd.key.object, "o");
  EXPECT_EQ(odd.key.session, "s:1");
  EXPECT_FALSE(ParseFlameTicket("app/s:3").ok());  // a prefix
  EXPECT_FALSE(ParseFlameTicket("app/s/o:-1").ok());
}

TEST(FlameObjectRef, IsBson) {
  const std::string bytes = EncodeObjectRef("grpc+tcp://127.0.0.1:1", "a/s/o", 5000000000);
  auto doc = nlohmann::json::from_bson(std::vector<uint8_t>(bytes.begin(), bytes.end()));
  EXPECT_EQ(doc["endpoint"], "grpc+tcp://127.0.0.1:1");
  EXPECT_EQ(doc["key"], "a/s/o");
  EXPECT_EQ(doc["version"].get<int64_t>(), 5000000000);
  EXPECT_EQ(bytes.back(), '\0');  // a BSON document ends with a NUL
}

TEST(FlameSchemas, NativeAndOpaque) {
  auto opaque = arrow::schema({arrow::field("version", arrow::uint64()),
                               arrow::field("data", arrow::binary())});
  EXPECT_TRUE(IsOpaqueSchema(*opaque));
  EXPECT_FALSE(IsNativeTable(*opaque));
  auto table = arrow::schema({arrow::field("x", arrow::int64())},
                             arrow::key_value_metadata({kFormatKey, kVersionKey, kLogicalTypeKey, "k"},
                                                       {kArrowTableFormat, "0",
                                                        "pandas.dataframe", "v"}));
  EXPECT_TRUE(IsNativeTable(*table));
  auto versioned = AsNativeTable(*table, 4);
  EXPECT_EQ(versioned->metadata()->Get(kVersionKey).ValueOr(""), "4");
  EXPECT_EQ(versioned->metadata()->Get(kLogicalTypeKey).ValueOr(""), "pandas.dataframe");
  EXPECT_EQ(versioned->metadata()->Get("k").ValueOr(""), "v");  // the user's metadata stays
  auto plain = AsNativeTable(*arrow::schema({arrow::field("x", arrow::int64())}), 2);
  EXPECT_TRUE(IsNativeTable(*plain));
  EXPECT_EQ(plain->metadata()->Get(kLogicalTypeKey).ValueOr(""), "pyarrow.table");
}

TEST(FlameRows, OpaqueBytesAndResponseBatch) {
  auto schema = arrow::schema({arrow::field("version", arrow::uint64()),
                               arrow::field("data", arrow::binary())});
  auto batch = [&](std::vector<std::string> chunks) {
    arrow::UInt64Builder v;
    arrow::BinaryBuilder d;
    for (const auto& c : chunks) {
      EXPECT_OK(v.Append(0));
      EXPECT_OK(d.Append(c));
    }
    return arrow::RecordBatch::Make(schema, static_cast<int64_t>(chunks.size()),
                                    {*v.Finish(), *d.Finish()});
  };
  // Rows of an upload in chunks are one object; a slice keeps only its rows.
  ASSERT_OK_AND_ASSIGN(auto bytes, OpaqueBytes({batch({"ab", "cd"}), batch({"x", "yz"})->Slice(1)}));
  EXPECT_EQ(bytes->ToString(), "abcdyz");
  EXPECT_FALSE(OpaqueBytes({arrow::RecordBatch::Make(
                               arrow::schema({arrow::field("data", arrow::binary())}), 0,
                               {*arrow::BinaryBuilder().Finish()})})
                   .ok());

  ASSERT_OK_AND_ASSIGN(auto rows, ResponseBatch({{3, true, arrow::Buffer::FromString("b")},
                                                 {4, false, arrow::Buffer::FromString("p")}}));
  EXPECT_TRUE(rows->schema()->Equals(*ResponseSchema()));
  ASSERT_EQ(rows->num_rows(), 2);
  EXPECT_EQ(std::static_pointer_cast<arrow::UInt64Array>(rows->column(0))->Value(1), 4u);
  EXPECT_EQ(std::static_pointer_cast<arrow::StringArray>(rows->column(1))->GetString(0), "base");
  EXPECT_EQ(std::static_pointer_cast<arrow::StringArray>(rows->column(1))->GetString(1), "patch");
  EXPECT_EQ(std::static_pointer_cast<arrow::BinaryArray>(rows->column(2))->GetString(1), "p");
}

TEST(FlameIds, AreVersion4Uuids) {
  const std::string id = NewObjectId();
  ASSERT_EQ(id.size(), 36u);
  EXPECT_EQ(id[8], '-');
  EXPECT_EQ(id[14], '4');
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos);
  EXPECT_NE(NewObjectId(), id);
}

}  // namespace
}  // namespace quiver::flame
