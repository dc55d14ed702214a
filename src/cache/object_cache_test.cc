#include "cache/object_cache.h"
#include "cache/object_patch.h"

#include "cache/engine_test_util.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/api.h>

#include "common/testing.h"
#include "index/embedded_index.h"
#include "storage/local_blob_store.h"
#include "storage/memory_blob_store.h"

namespace quiver {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<arrow::RecordBatch> Batch(int64_t start, int64_t n) {
  arrow::Int64Builder ids;
  arrow::StringBuilder names;
  for (int64_t i = start; i < start + n; ++i) {
    EXPECT_TRUE(ids.Append(i).ok());
    EXPECT_TRUE(names.Append("row-" + std::to_string(i)).ok());
  }
  auto schema = arrow::schema({arrow::field("id", arrow::int64()),
                               arrow::field("name", arrow::utf8())});
  return arrow::RecordBatch::Make(schema, n, {*ids.Finish(), *names.Finish()});
}

ObjectKey Key(const std::string& text) { return *ObjectKey::Parse(text); }

PutOptions IfVersion(uint64_t v) {
  PutOptions o;
  o.if_version = v;
  return o;
}

std::shared_ptr<arrow::Table> ReadEntry(const OpenEntry& entry) {
  auto reader = *arrow::ipc::RecordBatchStreamReader::Open(
      *arrow::io::RandomAccessFile::GetStream(entry.file, 0, *entry.file->GetSize()));
  return *reader->ToTable();
}

class ObjectCacheTest : public EngineTest {
 protected:
  void SetUp() override { Reopen(std::make_shared<MemoryBlobStore>()); }

  void Reopen(std::shared_ptr<BlobStore> store, EngineOptions options = {}) {
    Open(std::move(options), std::move(store));
  }

  arrow::Result<EntryMeta> Put(const std::string& key, std::vector<int64_t> batch_sizes,
                               PutOptions options = {}) {
    ARROW_ASSIGN_OR_RAISE(auto writer, cache_->BeginPut(Key(key), Batch(0, 1)->schema(), options));
    int64_t start = 0;
    for (auto n : batch_sizes) {
      ARROW_RETURN_NOT_OK(writer->Write(*Batch(start, n)));
      start += n;
    }
    return writer->Commit();
  }

  size_t DataBlobs() { return store_->List(kDataRoot)->size(); }
};

TEST_F(ObjectCacheTest, PutThenGetReturnsTheSameRows) {
  ASSERT_OK_AND_ASSIGN(auto meta, Put("s/o", {3, 4}));
  EXPECT_EQ(meta.version, 1u);
  EXPECT_EQ(meta.rows, 7);
  EXPECT_EQ(meta.batches, 2);
  ASSERT_OK_AND_ASSIGN(auto entry, cache_->Get(Key("s/o"), std::nullopt));
  ASSERT_TRUE(entry.has_value());
  auto table = ReadEntry(*entry);
  EXPECT_EQ(table->num_rows(), 7);
  auto expected = *arrow::Table::FromRecordBatches({Batch(0, 3), Batch(3, 4)});
  EXPECT_TRUE(table->Equals(*expected));
  EXPECT_EQ(*entry->file->GetSize(), meta.bytes);
}

TEST_F(ObjectCacheTest, VersionsIncreaseAndOldOnesAreTrimmed) {
  for (int i = 1; i <= 5; ++i) {
    ASSERT_OK_AND_ASSIGN(auto meta, Put("s/o", {static_cast<int64_t>(i)}));
    EXPECT_EQ(meta.version, static_cast<uint64_t>(i));
  }
  EXPECT_FALSE(cache_->Get(Key("s/o"), 2)->has_value()) << "version 2 should be trimmed";
  ASSERT_OK_AND_ASSIGN(auto v3, cache_->Get(Key("s/o"), 3));
  ASSERT_TRUE(v3.has_value());
  EXPECT_EQ(ReadEntry(*v3)->num_rows(), 3);
  EXPECT_EQ(DataBlobs(), 3u) << "trimmed versions must not leave data behind";
  auto stats = Stats();
  EXPECT_EQ(stats.index.versions, 3);
  EXPECT_EQ(stats.objects.puts, 5);
}

TEST_F(ObjectCacheTest, CompareAndSet) {
  ASSERT_OK(Put("s/o", {1}, IfVersion(0)).status());
  auto create_again = Put("s/o", {1}, IfVersion(0));
  EXPECT_TRUE(create_again.status().IsAlreadyExists()) << create_again.status();
  EXPECT_NE(create_again.status().message().find("version conflict"), std::string::npos);
  ASSERT_OK_AND_ASSIGN(auto v2, Put("s/o", {2}, IfVersion(1)));
  EXPECT_EQ(v2.version, 2u);
  EXPECT_TRUE(Put("s/o", {2}, IfVersion(1)).status().IsAlreadyExists());
}

TEST_F(ObjectCacheTest, CompareAndSetRaceHasOneWinnerAndNoLeftovers) {
  auto schema = Batch(0, 1)->schema();
  ASSERT_OK_AND_ASSIGN(auto a, cache_->BeginPut(Key("s/race"), schema, IfVersion(0)));
  ASSERT_OK_AND_ASSIGN(auto b, cache_->BeginPut(Key("s/race"), schema, IfVersion(0)));
  ASSERT_OK(a->Write(*Batch(0, 2)));
  ASSERT_OK(b->Write(*Batch(0, 5)));
  ASSERT_OK(b->Commit().status());
  auto lost = a->Commit();
  EXPECT_TRUE(lost.status().IsAlreadyExists()) << lost.status();
  EXPECT_EQ(DataBlobs(), 1u);
  EXPECT_EQ(ReadEntry(**cache_->Get(Key("s/race"), std::nullopt))->num_rows(), 5);
}

TEST_F(ObjectCacheTest, OversizedPutIsRefusedAndStoresNothing) {
  EngineOptions options;
  options.objects.max_object_bytes = 4096;
  Reopen(std::make_shared<MemoryBlobStore>(), options);
  ASSERT_OK(Put("s/o", {2}).status());
  auto big = Put("s/o", {10, 1000});
  ASSERT_TRUE(big.status().IsCapacityError()) << big.status();
  EXPECT_NE(big.status().message().find("max_object_bytes"), std::string::npos);
  EXPECT_EQ(DataBlobs(), 1u);
  EXPECT_EQ(ReadEntry(**cache_->Get(Key("s/o"), std::nullopt))->num_rows(), 2);
}

TEST_F(ObjectCacheTest, AbandonedPutLeavesNothing) {
  {
    ASSERT_OK_AND_ASSIGN(auto w, cache_->BeginPut(Key("s/o"), Batch(0, 1)->schema()));
    ASSERT_OK(w->Write(*Batch(0, 10)));
  }
  EXPECT_EQ(DataBlobs(), 0u);
  EXPECT_FALSE(cache_->Get(Key("s/o"), std::nullopt)->has_value());
  EXPECT_EQ(cache_->Stats().put_failures, 1);
}

TEST_F(ObjectCacheTest, SchemaMismatchIsRejected) {
  ASSERT_OK_AND_ASSIGN(auto w, cache_->BeginPut(Key("s/o"), Batch(0, 1)->schema()));
  auto other = arrow::RecordBatch::Make(arrow::schema({arrow::field("x", arrow::int32())}), 0,
                                        {*arrow::MakeArrayOfNull(arrow::int32(), 0)});
  EXPECT_TRUE(w->Write(*other).IsInvalid());
  EXPECT_EQ(DataBlobs(), 0u);
}

TEST_F(ObjectCacheTest, DeleteAndDeletePrefix) {
  ASSERT_OK(Put("a/x", {1}).status());
  ASSERT_OK(Put("a/x", {1}).status());
  ASSERT_OK(Put("a/y", {1}).status());
  ASSERT_OK(Put("ab/z", {1}).status());
  ASSERT_OK_AND_ASSIGN(auto n, cache_->Delete(Key("a/y")));
  EXPECT_EQ(n, 1);
  int64_t versions = 0;
  ASSERT_OK_AND_ASSIGN(auto keys, cache_->DeletePrefix("a", &versions));
  EXPECT_EQ(keys, std::vector<std::string>{"a/x"});
  EXPECT_EQ(versions, 2);
  EXPECT_TRUE(cache_->Get(Key("ab/z"), std::nullopt)->has_value());
  EXPECT_EQ(DataBlobs(), 1u);
  EXPECT_TRUE(store_->List(kManifestRoot + std::string("a/"))->empty());
}

TEST_F(ObjectCacheTest, RecoveryRebuildsQuarantinesAndCleans) {
  char tmpl[] = "/tmp/quiver-cache-test-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  Reopen(*LocalBlobStore::Open(dir));
  ASSERT_OK(Put("s/good", {5}).status());
  ASSERT_OK(Put("s/good", {6}).status());
  ASSERT_OK_AND_ASSIGN(auto bad, Put("s/bad", {7}));
  // Damage the bad entry's data, leave a temp file and an orphan blob behind.
  {
    std::fstream f(dir + "/" + bad.blob, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(bad.bytes / 2);
    f.put('\x7f');
  }
  std::ofstream(dir + "/.tmp/999-crashed.part") << "torn";
  ASSERT_OK(store_->WriteAll("data/00/orphan.arrows", "no manifest points here"));

  EngineOptions no_grace;
  no_grace.shared.garbage_grace_s = 0;
  Reopen(*LocalBlobStore::Open(dir), no_grace);
  const auto r = engine_->recovery();
  EXPECT_EQ(r.keys, 1);
  EXPECT_EQ(r.versions, 2);
  EXPECT_EQ(r.quarantined, 1);
  EXPECT_EQ(r.temp_files_removed, 1);
  // Data no manifest names is never deleted at startup (in shared mode it may be another
  // node's write in progress): the garbage sweep removes it after its grace period.
  EXPECT_EQ(r.unreferenced, 1);
  EXPECT_TRUE(store_->OpenReader("data/00/orphan.arrows").ok());
  ASSERT_OK_AND_ASSIGN(auto swept, engine_->SweepGarbage());
  EXPECT_EQ(swept.blobs_removed, 1);
  EXPECT_EQ(swept.manifests_removed, 0) << "published manifests are referenced";
  EXPECT_TRUE(store_->OpenReader("data/00/orphan.arrows").status().IsKeyError());
  EXPECT_FALSE(cache_->Get(Key("s/bad"), std::nullopt)->has_value());
  ASSERT_OK_AND_ASSIGN(auto good, cache_->Get(Key("s/good"), std::nullopt));
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(good->meta.version, 2u);
  EXPECT_EQ(ReadEntry(*good)->num_rows(), 6);
  EXPECT_TRUE(fs::exists(dir + "/quarantine/" + bad.blob));
  // A new put continues the version sequence.
  ASSERT_OK_AND_ASSIGN(auto v3, Put("s/good", {1}));
  EXPECT_EQ(v3.version, 3u);
  fs::remove_all(dir);
}

PutOptions Patch() {
  PutOptions o;
  o.patch = true;
  return o;
}

TEST_F(ObjectCacheTest, PatchesStoreOnlyTheirRowsAndReadAsOneObject) {
  ASSERT_OK(Put("s/log", {2}).status());
  ASSERT_OK_AND_ASSIGN(auto p2, Put("s/log", {1}, Patch()));
  ASSERT_OK_AND_ASSIGN(auto p3, Put("s/log", {3}, Patch()));
  EXPECT_EQ(p2.base_version, 1u);
  EXPECT_EQ(p3.base_version, 1u);  // the chain's base, not the previous patch
  EXPECT_EQ(p3.rows, 3);           // its own rows only
  ASSERT_OK_AND_ASSIGN(auto whole, cache_->Read(Key("s/log"), std::nullopt));
  ASSERT_TRUE(whole.has_value());
  ASSERT_EQ(whole->parts.size(), 3u);
  EXPECT_EQ(whole->since, 0u);
  EXPECT_EQ(whole->meta().version, 3u);
  ASSERT_OK_AND_ASSIGN(auto deltas, cache_->Read(Key("s/log"), std::nullopt, 2));
  ASSERT_EQ(deltas->parts.size(), 1u);
  EXPECT_EQ(deltas->since, 2u);
  EXPECT_EQ(ReadEntry(deltas->parts[0])->num_rows(), 3);
  // `since` outside the chain (or the version itself) reads the whole object.
  EXPECT_EQ(cache_->Read(Key("s/log"), std::nullopt, 3).ValueOrDie()->parts.size(), 3u);
  EXPECT_EQ(cache_->Read(Key("s/log"), 2, 7).ValueOrDie()->parts.size(), 2u);

  // A full put starts a new chain; the default keep_versions (3) then trims the old base.
  ASSERT_OK(Put("s/log", {1}).status());
  ASSERT_OK_AND_ASSIGN(auto full, cache_->Read(Key("s/log"), std::nullopt, 2));
  EXPECT_EQ(full->parts.size(), 1u);
  EXPECT_EQ(full->since, 0u);
  auto old = cache_->Read(Key("s/log"), 3);
  ASSERT_FALSE(old.ok());
  EXPECT_TRUE(old.status().IsKeyError()) << old.status();
}

TEST_F(ObjectCacheTest, ALongChainOutlivesKeepVersions) {
  ASSERT_OK(Put("s/log", {1}).status());
  for (int i = 0; i < 5; ++i) ASSERT_OK(Put("s/log", {1}, Patch()).status());
  ASSERT_OK_AND_ASSIGN(auto whole, cache_->Read(Key("s/log"), std::nullopt));
  ASSERT_EQ(whole->parts.size(), 6u);
  int64_t rows = 0;
  for (const auto& part : whole->parts) rows += ReadEntry(part)->num_rows();
  EXPECT_EQ(rows, 6);
}

TEST_F(ObjectCacheTest, PatchesAreCheckedAgainstTheObject) {
  auto missing = Put("s/none", {1}, Patch());
  EXPECT_TRUE(missing.status().IsKeyError()) << missing.status();
  ASSERT_OK(Put("s/o", {1}).status());
  auto other = arrow::schema({arrow::field("id", arrow::utf8())});
  auto refused = cache_->BeginPut(Key("s/o"), other, Patch());
  ASSERT_TRUE(refused.status().IsInvalid()) << refused.status();
  EXPECT_NE(refused.status().message().find("field 0 is 'id: string' in the patch"),
            std::string::npos)
      << refused.status();
  PutOptions stale = Patch();
  stale.if_version = 5;
  EXPECT_TRUE(Put("s/o", {1}, stale).status().IsAlreadyExists());
  EXPECT_EQ(DataBlobs(), 1u);  // nothing of the refused patches stays
}

TEST(SchemaDifference, NamesTheFirstDifference) {
  auto a = arrow::schema({arrow::field("id", arrow::int64()), arrow::field("n", arrow::utf8())});
  EXPECT_EQ(SchemaDifference(*a, *a->WithMetadata(arrow::key_value_metadata({"k"}, {"v"}))), "");
  EXPECT_EQ(SchemaDifference(*a, *arrow::schema({arrow::field("id", arrow::int64())})),
            "the patch lacks field 1 'n: string' of the object");
  EXPECT_EQ(SchemaDifference(*arrow::schema({arrow::field("id", arrow::int64())}), *a),
            "the patch has an extra field 1 'n: string'");
  EXPECT_EQ(SchemaDifference(*a, *arrow::schema({arrow::field("id", arrow::int64(), false),
                                                 arrow::field("n", arrow::utf8())})),
            "field 0 is 'id: int64 not null' in the patch, 'id: int64' in the object");
}

}  // namespace
}  // namespace quiver
