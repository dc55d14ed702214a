// PackedEntry: every entry comes back exactly as packed, and Quiver's own names pack small.
#include "index/packed_entry.h"

#include <gtest/gtest.h>

#include "index/index_test_util.h"

namespace quiver {
namespace {

void ExpectRoundTrip(const EntryMeta& e) {
  auto packed = PackedEntry::Pack(e);
  EXPECT_EQ(EntryToJson(packed.Unpack(e.key)), EntryToJson(e));
  EXPECT_EQ(packed.version(), e.version);
  EXPECT_EQ(packed.bytes(), e.bytes);
  EXPECT_EQ(packed.created_ms(), e.created_ms);
  EXPECT_EQ(packed.cost_ms(), e.cost_ms);
  EXPECT_EQ(packed.blob(), e.blob);
  EXPECT_EQ(packed.depends_on(), e.depends_on);
  EXPECT_EQ(packed.tags(), e.tags);
  EXPECT_EQ(packed.tenant(e.key), EntryTenant(e));
}

TEST(PackedEntry, QuiversOwnNamesPackSmall) {
  auto e = IndexConformanceTest::OwnNamesEntry("scale/obj-0000123", 7, 1763765000000);
  ExpectRoundTrip(e);
  EXPECT_LE(PackedEntry::Pack(e).packed_size(), 64u);
}

TEST(PackedEntry, OtherNamesAndFieldsAreKeptAsWritten) {
  auto e = IndexConformanceTest::Entry("ns/s/o", 42, 123456789);  // names of no pattern
  ExpectRoundTrip(e);
  e.checksum = "D2B1C0FFEE123456";  // upper case hex must not come back lower case
  e.schema_fingerprint = "00ff";
  e.key_id = "0123456789abcdef";
  e.source = "pg";
  e.query = R"({"sql":"select 1"})";
  e.expires_ms = 99;
  e.depends_on = {"s/x", "@q/abc"};
  e.tags = {"t1", ""};
  ExpectRoundTrip(e);
  // a manifest that looks like Quiver's but names another version, or another key
  e.blob = NewDataBlobName("other-node");
  e.manifest = NewManifestName(e.key, e.version + 1, e.node);
  ExpectRoundTrip(e);
  e.manifest = NewManifestName("ns/s/other", e.version, e.node);
  ExpectRoundTrip(e);
  e.node = "weird node/with~chars";
  e.blob = NewDataBlobName(e.node);
  e.manifest = NewManifestName(e.key, e.version, e.node);
  ExpectRoundTrip(e);
  e.tenant = "acme";  // the tenant a query result counts against
  ExpectRoundTrip(e);
  EXPECT_EQ(PackedEntry::Pack(e).tenant(e.key), "acme");
  e.base_version = 40;  // a patch
  ExpectRoundTrip(e);
  EXPECT_EQ(PackedEntry::Pack(e).Unpack(e.key).base_version, 40u);
  EXPECT_TRUE(PackedEntry::Pack(e).expired(99));
  EXPECT_FALSE(PackedEntry::Pack(e).expired(98));
}

TEST(PackedEntry, NodeIdsPastTheInternedOnesAreKeptAsText) {
  EntryMeta e;
  e.key = "s/o";
  e.version = 1;
  e.bytes = 10;
  for (int i = 0; i < 4200; ++i) {  // the table holds 4096 ids
    e.node = "node-" + std::to_string(i);
    e.blob = NewDataBlobName(e.node);
    e.manifest = NewManifestName(e.key, e.version, e.node);
    ExpectRoundTrip(e);
  }
}

}  // namespace
}  // namespace quiver
