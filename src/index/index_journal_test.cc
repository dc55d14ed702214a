// The embedded index's journal: what it recovers after clean and unclean ends, and what it
// refuses to trust.
#include "index/index_journal.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "common/testing.h"
#include "index/embedded_index.h"
#include "index/index_test_util.h"

namespace quiver {
namespace {

namespace fs = std::filesystem;

// (key, version, blob) of every version an index holds, in key order.
using Listing = std::vector<std::tuple<std::string, uint64_t, std::string>>;

Listing ListingOf(const std::vector<RecoveredEntry>& entries) {
  Listing out;
  for (const auto& e : entries) out.emplace_back(e.key, e.packed.version(), e.packed.blob());
  return out;
}

Listing ListingOf(EmbeddedIndex* index) {
  Listing out;
  for (const auto& item : *index->ListLatest("")) {
    for (uint64_t v = 1; v <= item.latest.version; ++v) {
      auto meta = *index->Get(item.latest.key, v);
      if (meta) out.emplace_back(meta->key, meta->version, meta->blob);
    }
  }
  return out;
}

class IndexJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quiver-journal-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    Reopen();
  }
  void TearDown() override {
    index_.reset();
    journal_.reset();
    fs::remove_all(dir_);
  }

  // A new process: a fresh journal object and an empty index, attached after recovery.
  JournalRecovery Reopen() {
    index_.reset();
    journal_.reset();
    auto journal = IndexJournal::Open(dir_);
    EXPECT_TRUE(journal.ok()) << journal.status().ToString();
    journal_ = std::move(*journal);
    index_ = std::make_unique<EmbeddedIndex>();
    auto recovered = journal_->Recover();
    EXPECT_TRUE(recovered.ok()) << recovered.status().ToString();
    // What was recovered (before the index takes the entries).
    recovered_ = ListingOf(recovered->entries);
    if (recovered->found) {
      EXPECT_OK(index_->LoadRecovered(std::move(recovered->entries), ScoringPolicy{}));
    }
    EXPECT_OK(index_->MarkRebuilt());
    index_->AttachJournal(journal_.get());
    return std::move(*recovered);
  }

  // Publish the next version of `key`, keeping `keep` versions; a query result of `tenant`
  // if that is not empty.
  EntryMeta Publish(const std::string& key, int64_t keep = 3, const std::string& tenant = "") {
    auto latest = *index_->Get(key, std::nullopt);
    PublishRequest r;
    r.expected_version = latest ? latest->version : 0;
    r.expected_blob = latest ? latest->blob : "";
    r.entry = IndexConformanceTest::Entry(key, r.expected_version + 1);
    r.entry.blob = NewDataBlobName("n");
    r.entry.depends_on = {"dep/" + key};
    r.entry.tags = {"tag"};
    if (!tenant.empty()) {
      r.entry.source = "lite";
      r.entry.query = R"({"scope":"tenant:)" + tenant + R"("})";
      r.entry.tenant = tenant;
    }
    r.keep_versions = keep;
    auto outcome = index_->Publish(r);
    EXPECT_TRUE(outcome.ok() && outcome->published());
    return r.entry;
  }

  void Checkpoint() {
    ASSERT_OK(index_->Checkpoint([] { return arrow::Status::OK(); }));
  }

  std::vector<std::string> Files(const std::string& prefix) {
    std::vector<std::string> out;
    for (const auto& item : fs::directory_iterator(dir_)) {
      auto name = item.path().filename().string();
      if (name.rfind(prefix, 0) == 0) out.push_back(item.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  static void FlipByte(const std::string& path, int64_t offset) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(offset);
    char c = 0;
    f.get(c);
    f.seekp(offset);
    f.put(static_cast<char>(c ^ 0x5a));
  }

  std::string dir_;
  std::unique_ptr<IndexJournal> journal_;
  std::unique_ptr<EmbeddedIndex> index_;
  Listing recovered_;  // what the last Reopen() recovered
};

TEST(IndexJournalCodec, EntriesRoundTrip) {
  auto e = IndexConformanceTest::Entry("ns/s/o", 42, 123456789);
  e.key_id = "0123456789abcdef";
  e.source = "pg";
  e.query = R"({"sql":"select 1"})";
  e.expires_ms = 99;
  e.cost_ms = 7;
  e.depends_on = {"s/x", "@q/abc"};
  e.tags = {"t1", ""};
  ASSERT_OK_AND_ASSIGN(auto back, DecodeJournalEntry(EncodeJournalEntry(e)));
  EXPECT_EQ(EntryToJson(back), EntryToJson(e));
  auto bytes = EncodeJournalEntry(e);
  EXPECT_FALSE(DecodeJournalEntry(bytes.substr(0, bytes.size() - 1)).ok());
  EXPECT_FALSE(DecodeJournalEntry(bytes + "x").ok());
  e.tenant = "acme";  // a query result's tenant: after base_version (0 here)
  ASSERT_OK_AND_ASSIGN(auto of_tenant, DecodeJournalEntry(EncodeJournalEntry(e)));
  EXPECT_EQ(of_tenant.tenant, "acme");
  EXPECT_EQ(of_tenant.base_version, 0u);
  e.tenant.clear();
  e.base_version = 40;  // a patch: written last, read back
  ASSERT_OK_AND_ASSIGN(auto patch, DecodeJournalEntry(EncodeJournalEntry(e)));
  EXPECT_EQ(patch.base_version, 40u);
  EXPECT_EQ(EntryToJson(patch), EntryToJson(e));
  e.tenant = "acme";
  ASSERT_OK_AND_ASSIGN(auto both, DecodeJournalEntry(EncodeJournalEntry(e)));
  EXPECT_EQ(EntryToJson(both), EntryToJson(e));
}

TEST_F(IndexJournalTest, AnEmptyDirectoryHasNothingToRecover) {
  auto again = Reopen();
  EXPECT_FALSE(again.found);
  EXPECT_EQ(again.why, "no index journal yet");
}

TEST_F(IndexJournalTest, RecoversSnapshotPlusLogExactly) {
  Checkpoint();  // as after the rebuild at a first start
  for (int i = 0; i < 20; ++i) Publish("k/" + std::to_string(i % 7), /*keep=*/2);
  const std::string result_a = kQueryKeyPrefix + std::string(64, 'a');
  const std::string result_b = kQueryKeyPrefix + std::string(64, 'b');
  Publish(result_a, /*keep=*/2, /*tenant=*/"t");  // in the snapshot
  Checkpoint();
  Publish(result_b, /*keep=*/2, /*tenant=*/"t");  // in the log
  for (int i = 0; i < 10; ++i) Publish("k/" + std::to_string(i % 4), /*keep=*/2);
  ASSERT_OK(index_->Remove(RemoveRequest("k/1")).status());
  ASSERT_OK(index_->Trim("k/2", 1).status());
  ASSERT_OK(index_->Remove(RemoveRequest("k/absent")).status());
  for (const char* key : {"t/s/a", "t/s/a", "t/s/b"}) Publish(key, /*keep=*/2);
  const auto expected = ListingOf(index_.get());
  const auto stats = *index_->Stats();
  const auto tenant = *index_->TenantStats("t");
  ASSERT_EQ(tenant.keys, 4) << "t/s/a, t/s/b and two query results of tenant t";

  auto recovered = Reopen();
  ASSERT_TRUE(recovered.found) << recovered.why;
  EXPECT_EQ(recovered_, expected);
  EXPECT_EQ(recovered.log_records, 1 + 10 + 2 + 3);  // the removal of an absent key is no record
  EXPECT_EQ(ListingOf(index_.get()), expected);
  EXPECT_EQ(index_->Stats()->keys, stats.keys);
  EXPECT_EQ(index_->Stats()->bytes, stats.bytes);
  EXPECT_EQ(index_->TenantStats("t")->keys, tenant.keys);
  EXPECT_EQ(index_->TenantStats("t")->bytes, tenant.bytes);
  // links of the latest versions came back with them
  EXPECT_EQ(*index_->Dependents("dep/k/0"), std::vector<std::string>{"k/0"});
  EXPECT_EQ(index_->KeysWithTag("tag")->size(), static_cast<size_t>(stats.keys));
  // and the journal goes on from there
  Publish("k/0");
  auto again = Reopen();
  EXPECT_EQ(recovered_, ListingOf(index_.get()));
  EXPECT_EQ(index_->Get("k/0", std::nullopt)->value().version, 7u);  // 3 + 3 before
}

TEST_F(IndexJournalTest, ACleanCheckpointLeavesOneSnapshotAndAnEmptyLog) {
  Checkpoint();
  for (int i = 0; i < 5; ++i) Publish("a/" + std::to_string(i));
  Checkpoint();
  EXPECT_EQ(Files("snapshot-").size(), 1u);
  EXPECT_EQ(Files("log-").size(), 1u);
  auto recovered = Reopen();
  EXPECT_EQ(recovered.log_records, 0);
  EXPECT_EQ(recovered.snapshot_rows, 5);
}

TEST_F(IndexJournalTest, ACheckpointCutShortFallsBackToTheLogs) {
  Checkpoint();
  for (int i = 0; i < 5; ++i) Publish("a/" + std::to_string(i));
  {
    // The new log is started, the snapshot never finished (the process died).
    ASSERT_OK_AND_ASSIGN(auto writer, journal_->BeginCheckpoint());
    auto meta = *index_->Get("a/0", std::nullopt);
    ASSERT_TRUE(meta.has_value());
    ASSERT_OK(writer->Add(*meta));
  }
  Publish("a/9");  // goes to the new log
  const auto expected = ListingOf(index_.get());
  EXPECT_EQ(Files("log-").size(), 2u);
  auto recovered = Reopen();
  ASSERT_TRUE(recovered.found) << recovered.why;
  EXPECT_EQ(recovered_, expected);
  EXPECT_EQ(Files("snapshot-").size(), 1u);
  for (const auto& f : fs::directory_iterator(dir_)) EXPECT_NE(f.path().extension(), ".part");
}

TEST_F(IndexJournalTest, ARecordCutShortAtTheEndIsDropped) {
  Checkpoint();
  Publish("t/a");
  Publish("t/b");
  const auto before_last = ListingOf(index_.get());
  Publish("t/c");
  auto log = Files("log-").back();
  const auto size = fs::file_size(log);
  index_.reset();
  journal_.reset();
  fs::resize_file(log, size - 5);  // the last append, torn
  auto recovered = Reopen();
  ASSERT_TRUE(recovered.found) << recovered.why;
  EXPECT_GT(recovered.torn_bytes, 0);
  EXPECT_EQ(recovered_, before_last);
  // the log was cut back to its last whole record, and appends continue it
  Publish("t/d");
  auto again = Reopen();
  ASSERT_TRUE(again.found) << again.why;
  EXPECT_EQ(again.torn_bytes, 0);
  EXPECT_EQ(recovered_.size(), 3u);
}

TEST_F(IndexJournalTest, DamageInsideTheLogIsSetAsideNeverTrusted) {
  Checkpoint();
  Publish("d/a");
  Publish("d/b");
  Publish("d/c");
  auto log = Files("log-").back();
  index_.reset();
  journal_.reset();
  FlipByte(log, 24 + 12 + 20);  // inside the first record's payload
  auto recovered = Reopen();
  EXPECT_FALSE(recovered.found);
  EXPECT_NE(recovered.why.find("fails its checksum"), std::string::npos) << recovered.why;
  EXPECT_TRUE(Files("log-").empty());
  EXPECT_TRUE(Files("snapshot-").empty());
  ASSERT_EQ(Files("damaged-").size(), 1u);
  EXPECT_EQ(std::distance(fs::directory_iterator(Files("damaged-")[0]), fs::directory_iterator{}), 2);
}

TEST_F(IndexJournalTest, ADamagedSnapshotIsSetAsideNeverTrusted) {
  Checkpoint();
  for (int i = 0; i < 50; ++i) Publish("s/" + std::to_string(i));
  Checkpoint();
  auto snapshot = Files("snapshot-").back();
  index_.reset();
  journal_.reset();
  FlipByte(snapshot, static_cast<int64_t>(fs::file_size(snapshot) / 2));
  auto recovered = Reopen();
  EXPECT_FALSE(recovered.found);
  EXPECT_NE(recovered.why.find("checksum"), std::string::npos) << recovered.why;
  EXPECT_EQ(Files("damaged-").size(), 1u);
}

TEST_F(IndexJournalTest, ASnapshotWithoutItsLogIsNotTrusted) {
  Checkpoint();
  Publish("m/a");
  Checkpoint();
  Publish("m/b");  // in the log only
  auto log = Files("log-").back();
  index_.reset();
  journal_.reset();
  fs::remove(log);  // as an append that failed leaves it
  auto recovered = Reopen();
  EXPECT_FALSE(recovered.found);
  EXPECT_NE(recovered.why.find("is missing"), std::string::npos) << recovered.why;
}

TEST_F(IndexJournalTest, EntriesPublishedAfterTheLastFlushAreReported) {
  Checkpoint();
  Publish("u/a");
  Publish("u/b");
  journal_->MarkSynced(journal_->last_seq());
  Publish("u/c");
  Publish("u/a");
  ASSERT_OK(index_->Remove(RemoveRequest("u/c")).status());
  auto recovered = Reopen();
  ASSERT_TRUE(recovered.found);
  // u/c was removed again; u/a@2 is still there and was never flushed
  EXPECT_EQ(recovered.unsynced,
            (std::vector<std::pair<std::string, uint64_t>>{{"u/a", 2}}));
}

TEST_F(IndexJournalTest, ConcurrentWritersAndACheckpointLoseNothing) {
  Checkpoint();
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([this, t] {
      for (int i = 0; i < 200; ++i) Publish("c" + std::to_string(t) + "/" + std::to_string(i % 13), 2);
    });
  }
  for (int i = 0; i < 5; ++i) Checkpoint();
  for (auto& w : writers) w.join();
  const auto expected = ListingOf(index_.get());
  auto recovered = Reopen();
  ASSERT_TRUE(recovered.found) << recovered.why;
  EXPECT_EQ(recovered_, expected);
}

}  // namespace
}  // namespace quiver
