// S3BlobStore against a real s3proxy (s3proxy_test_util.h): the BlobStore conformance suite,
// with and without SSE-C, then what is S3's own: SSE-C enforced by the server, key rotation,
// aborted uploads, ranged reads of a large blob, and connection errors.
#include "storage/s3_blob_store.h"

#include <gtest/gtest.h>

#include <arrow/filesystem/s3fs.h>

#include "common/testing.h"
#include "storage/blob_store_test_util.h"
#include "storage/s3proxy_test_util.h"

namespace quiver {
namespace {

using testing_util::S3Proxy;

// The AWS SDK must be shut down before the process exits, after every store is gone.
class S3Environment : public ::testing::Environment {
 public:
  void TearDown() override { FinalizeS3IfInitialized(); }
};
const auto* const kS3Environment = ::testing::AddGlobalTestEnvironment(new S3Environment);

#define QUIVER_REQUIRE_S3PROXY()                                         \
  do {                                                                   \
    if (S3Proxy::Shared() == nullptr) {                                  \
      if (S3Proxy::SkipReason().rfind("FAILED", 0) == 0) {               \
        FAIL() << S3Proxy::SkipReason();                                 \
      }                                                                  \
      GTEST_SKIP() << "s3proxy not available: " << S3Proxy::SkipReason(); \
    }                                                                    \
  } while (false)

S3StoreOptions::SseCKey Key(const std::string& id, char fill) {
  return S3StoreOptions::SseCKey{id, std::string(32, fill)};
}

class S3ConformanceTest : public BlobStoreConformanceTest {
 protected:
  virtual S3StoreOptions Options(const std::string& bucket) {
    auto o = S3Proxy::Shared()->StoreOptions(bucket);
    o.prefix = "store/prefix";
    return o;
  }
  void SetUp() override {
    QUIVER_REQUIRE_S3PROXY();
    ASSERT_OK_AND_ASSIGN(bucket_, S3Proxy::Shared()->MakeBucket());
    BlobStoreConformanceTest::SetUp();
    ASSERT_NE(store_, nullptr);
  }
  std::shared_ptr<BlobStore> OpenStore() override {
    auto store = S3BlobStore::Open(Options(bucket_), "test");
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *store : nullptr;
  }
  // s3proxy's transient backend answers a GET racing a PUT of the same key with the new
  // object's length and a mix of both bodies; AWS S3 replaces objects atomically. Quiver
  // never writes one name twice (blob names are unique), so nothing relies on it; the
  // other cases still run against the server.
  void TestRacingWritersOfOneNameNeverTear() {
    GTEST_SKIP() << "s3proxy (transient backend) does not replace an object atomically "
                    "under a concurrent GET; Quiver never rewrites a blob name";
  }
  std::string bucket_;
};
QUIVER_BLOB_STORE_CONFORMANCE_TESTS(S3ConformanceTest)

class S3SseCConformanceTest : public S3ConformanceTest {
 protected:
  S3StoreOptions Options(const std::string& bucket) override {
    auto o = S3ConformanceTest::Options(bucket);
    o.sse_c = Key("k1", 'A');
    return o;
  }
};
QUIVER_BLOB_STORE_CONFORMANCE_TESTS(S3SseCConformanceTest)

class S3BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    QUIVER_REQUIRE_S3PROXY();
    ASSERT_OK_AND_ASSIGN(bucket_, S3Proxy::Shared()->MakeBucket());
  }
  S3StoreOptions Options() const { return S3Proxy::Shared()->StoreOptions(bucket_); }
  std::shared_ptr<S3BlobStore> Open(S3StoreOptions o) {
    auto store = S3BlobStore::Open(std::move(o));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *store : nullptr;
  }
  std::string bucket_;
};

TEST_F(S3BlobStoreTest, ServerEnforcesSseC) {
  auto o = Options();
  o.sse_c = Key("a", 'A');
  auto store_a = Open(o);
  ASSERT_OK(store_a->WriteAll("secret/blob", "top secret bytes"));
  ASSERT_OK_AND_ASSIGN(auto writer, store_a->OpenWriter("secret/other"));
  EXPECT_EQ(writer->key_id(), "a");
  ASSERT_OK(writer->Abort());
  EXPECT_EQ(*store_a->ReadAll("secret/blob", BlobHint{16, "a"}), "top secret bytes");
  EXPECT_EQ(*store_a->ReadAll("secret/blob"), "top secret bytes");

  // Another key (B, named "a" to make the server the only judge), and no key at all.
  o.sse_c = Key("a", 'B');
  auto store_b = Open(o);
  auto wrong = store_b->ReadAll("secret/blob", BlobHint{16, "a"});
  ASSERT_FALSE(wrong.ok());
  EXPECT_FALSE(wrong.status().IsKeyError()) << wrong.status();
  EXPECT_EQ(wrong.status().message().find(std::string(32, 'B')), std::string::npos);
  auto plain = Open(Options());
  auto none = plain->ReadAll("secret/blob", BlobHint{16, ""});
  ASSERT_FALSE(none.ok()) << "read without the key: " << *none;
  EXPECT_FALSE(none.status().IsKeyError()) << none.status();
  // Straight through Arrow, no store in between: the server refuses a GET without the key and
  // a HEAD without SSE-C headers (the Arrow 26 gap the store routes around).
  ASSERT_OK_AND_ASSIGN(auto fs, arrow::fs::S3FileSystem::Make([&] {
                         auto opts = arrow::fs::S3Options::FromAccessKey(
                             S3Proxy::Shared()->access_key(), S3Proxy::Shared()->secret_key());
                         opts.region = S3Proxy::Shared()->region();
                         opts.endpoint_override = S3Proxy::Shared()->endpoint();
                         opts.tls_ca_file_path = S3Proxy::Shared()->ca_file();
                         return opts;
                       }()));
  auto head = fs->GetFileInfo(bucket_ + "/secret/blob");
  EXPECT_FALSE(head.ok()) << "HEAD without SSE-C headers was accepted";
  arrow::fs::FileInfo info(bucket_ + "/secret/blob", arrow::fs::FileType::File);
  info.set_size(16);
  ASSERT_OK_AND_ASSIGN(auto file, fs->OpenInputFile(info));
  EXPECT_FALSE(file->ReadAt(0, 16).ok()) << "GET without the key was accepted";

  // Delete and Move work on SSE-C blobs.
  ASSERT_OK(store_a->Move("secret/blob", "quarantine/blob"));
  EXPECT_EQ(*store_a->ReadAll("quarantine/blob", BlobHint{-1, "a"}), "top secret bytes");
  ASSERT_OK(store_a->Delete("quarantine/blob"));
  EXPECT_TRUE(store_a->OpenReader("quarantine/blob").status().IsKeyError())
      << store_a->OpenReader("quarantine/blob").status();
  EXPECT_TRUE(store_a->List("")->empty());
}

TEST_F(S3BlobStoreTest, RotationKeepsOldBlobsReadable) {
  auto o = Options();
  o.sse_c = Key("2025", 'O');
  auto old_store = Open(o);
  ASSERT_OK(old_store->WriteAll("r/old", "written with the old key"));

  o.sse_c = Key("2026", 'N');
  o.old_keys = {Key("2025", 'O')};
  auto store = Open(o);
  ASSERT_OK_AND_ASSIGN(auto writer, store->OpenWriter("r/new"));
  EXPECT_EQ(writer->key_id(), "2026");
  ASSERT_OK(writer->Write("written with the new key", 24));
  ASSERT_OK(writer->Commit());
  EXPECT_EQ(*store->ReadAll("r/old", BlobHint{24, "2025"}), "written with the old key");
  EXPECT_EQ(*store->ReadAll("r/old"), "written with the old key");  // tries keys in turn
  EXPECT_EQ(*store->ReadAll("r/new", BlobHint{24, "2026"}), "written with the new key");
  EXPECT_FALSE(old_store->ReadAll("r/new").ok()) << "the old key reads a new blob";
  auto unknown = store->OpenReader("r/old", BlobHint{24, "1999"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("'1999' is not in the configured keys"),
            std::string::npos)
      << unknown.status();
  // The wrong named key is refused by the server, not silently replaced by another.
  EXPECT_FALSE(store->ReadAll("r/old", BlobHint{24, "2026"}).ok());
  EXPECT_EQ(store->Describe().find(std::string(32, 'N')), std::string::npos);
  EXPECT_NE(store->Describe().find("sse-c key 2026"), std::string::npos) << store->Describe();
}

TEST_F(S3BlobStoreTest, AbortedMultipartUploadLeavesNothing) {
  auto o = Options();
  o.sse_c = Key("k", 'K');
  auto store = Open(o);
  std::string chunk(1 << 20, 'x');
  {
    ASSERT_OK_AND_ASSIGN(auto writer, store->OpenWriter("big/aborted"));
    for (int i = 0; i < 24; ++i) ASSERT_OK(writer->Write(chunk.data(), 1 << 20));  // 2+ parts
    ASSERT_OK(writer->Abort());
  }
  {
    ASSERT_OK_AND_ASSIGN(auto writer, store->OpenWriter("big/dropped"));
    for (int i = 0; i < 12; ++i) ASSERT_OK(writer->Write(chunk.data(), 1 << 20));
  }  // destroyed without Commit
  EXPECT_TRUE(store->List("")->empty());
  EXPECT_TRUE(store->OpenReader("big/aborted").status().IsKeyError());
  EXPECT_TRUE(store->OpenReader("big/dropped", BlobHint{12 << 20, "k"}).status().IsKeyError());
}

TEST_F(S3BlobStoreTest, LargeBlobReadsInRanges) {
  auto o = Options();
  o.sse_c = Key("k", 'K');
  o.prefix = "p";
  auto store = Open(o);
  const int64_t size = 20 << 20;
  std::string data(static_cast<size_t>(size), '\0');
  for (int64_t i = 0; i < size; ++i) data[static_cast<size_t>(i)] = static_cast<char>(i * 7 % 251);
  ASSERT_OK_AND_ASSIGN(auto writer, store->OpenWriter("large/blob"));
  for (int64_t at = 0; at < size; at += 3 << 20) {
    ASSERT_OK(writer->Write(data.data() + at, std::min<int64_t>(3 << 20, size - at)));
  }
  ASSERT_OK(writer->Commit());
  ASSERT_OK_AND_ASSIGN(auto listed, store->List("large/"));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].size, size);
  for (const BlobHint& hint : {BlobHint{size, "k"}, BlobHint{}}) {
    ASSERT_OK_AND_ASSIGN(auto file, store->OpenReader("large/blob", hint));
    EXPECT_EQ(*file->GetSize(), size);
    for (int64_t at : {int64_t{0}, int64_t{5}, int64_t{(1 << 20) - 3}, size - 1000}) {
      ASSERT_OK_AND_ASSIGN(auto piece, file->ReadAt(at, 1 << 20));
      const int64_t expect = std::min<int64_t>(1 << 20, size - at);
      ASSERT_EQ(piece->size(), expect);
      EXPECT_EQ(piece->ToString(), data.substr(static_cast<size_t>(at), static_cast<size_t>(expect)));
    }
  }
  EXPECT_EQ(*store->ReadAll("large/blob", BlobHint{size, "k"}), data);
}

TEST_F(S3BlobStoreTest, UnreachableEndpointIsAClearError) {
  auto o = Options();
  o.endpoint_override = "127.0.0.1:1";
  o.connect_timeout_s = 1;
  o.max_retries = 1;
  auto store = S3BlobStore::Open(o);
  ASSERT_FALSE(store.ok());
  const std::string& m = store.status().message();
  EXPECT_NE(m.find("127.0.0.1:1"), std::string::npos) << m;
  EXPECT_NE(m.find(bucket_), std::string::npos) << m;
  EXPECT_NE(m.find("eu-west-3"), std::string::npos) << m;
  EXPECT_EQ(m.find(o.secret_key), std::string::npos) << m;
}

TEST_F(S3BlobStoreTest, BadCredentialsAreAClearErrorWithoutTheSecret) {
  auto o = Options();
  o.secret_key = "wrong-secret-must-not-appear";
  o.sse_c = Key("k", 'S');
  auto store = S3BlobStore::Open(o);
  ASSERT_FALSE(store.ok());
  const std::string& m = store.status().message();
  EXPECT_NE(m.find("access denied"), std::string::npos) << m;
  EXPECT_NE(m.find(bucket_), std::string::npos) << m;
  EXPECT_EQ(m.find("wrong-secret-must-not-appear"), std::string::npos) << m;
  EXPECT_EQ(m.find(std::string(32, 'S')), std::string::npos) << m;
}

TEST_F(S3BlobStoreTest, MissingBucketIsAClearError) {
  auto o = Options();
  o.bucket = "quiver-no-such-bucket";
  auto store = S3BlobStore::Open(o);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("no such bucket"), std::string::npos)
      << store.status();
}

TEST_F(S3BlobStoreTest, RejectsBadOptions) {
  auto o = Options();
  o.region = "";
  EXPECT_TRUE(S3BlobStore::Open(o).status().IsInvalid());
  o = Options();
  o.sse_c = S3StoreOptions::SseCKey{"short", "only-16-bytes..."};
  auto st = S3BlobStore::Open(o).status();
  EXPECT_TRUE(st.IsInvalid());
  EXPECT_EQ(st.message().find("only-16-bytes"), std::string::npos) << st;
}

}  // namespace
}  // namespace quiver
