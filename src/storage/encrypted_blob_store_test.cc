// EncryptedBlobStore over a real LocalBlobStore: conformance, round trips, random access, and
// tampering with the files on disk (every case must be detected, never answered with wrong
// bytes).
#include "storage/encrypted_blob_store.h"

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/api.h>

#include "common/testing.h"
#include "storage/blob_store_test_util.h"
#include "storage/local_blob_store.h"
#include "storage/memory_blob_store.h"

namespace quiver {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kChunk = EncryptedBlobStore::kChunkSize;
constexpr int64_t kHeader = EncryptedBlobStore::kHeaderSize;
constexpr int64_t kTag = EncryptedBlobStore::kTagSize;

EncryptionKey TestKey(char seed) {
  std::string bytes(32, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(seed * 31 + i * 7);
  return *KeyFromBytes(bytes);
}

std::string RandomBytes(size_t n, uint64_t seed = 42) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(rng());
  return out;
}

std::string MakeTempDir() {
  char tmpl[] = "/tmp/quiver-enc-test-XXXXXX";
  return ::mkdtemp(tmpl);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

class EncryptedBlobStoreConformanceTest : public BlobStoreConformanceTest {
 protected:
  EncryptedBlobStoreConformanceTest() : dir_(MakeTempDir()) {}
  ~EncryptedBlobStoreConformanceTest() override { fs::remove_all(dir_); }
  std::shared_ptr<BlobStore> OpenStore() override {
    auto inner = LocalBlobStore::Open(dir_);
    EXPECT_TRUE(inner.ok()) << inner.status();
    auto store = EncryptedBlobStore::Make(*inner, TestKey('a'));
    EXPECT_TRUE(store.ok()) << store.status();
    return *store;
  }
  std::string dir_;
};

// Every case but ListDeleteMove, whose moved blob must read back under its new name: the
// name is authenticated, so that is the one thing this store refuses (see the test below).
QUIVER_BLOB_STORE_CONFORMANCE_TEST(EncryptedBlobStoreConformanceTest, CommitMakesBlobVisibleWhole)
QUIVER_BLOB_STORE_CONFORMANCE_TEST(EncryptedBlobStoreConformanceTest,
                                   AbortAndDestructionLeaveNothing)
QUIVER_BLOB_STORE_CONFORMANCE_TEST(EncryptedBlobStoreConformanceTest, CommitReplacesAtomically)
QUIVER_BLOB_STORE_CONFORMANCE_TEST(EncryptedBlobStoreConformanceTest, RejectsEscapingNames)
QUIVER_BLOB_STORE_CONFORMANCE_TEST(EncryptedBlobStoreConformanceTest,
                                   RacingWritersOfOneNameNeverTear)
QUIVER_BLOB_STORE_CONFORMANCE_TEST(EncryptedBlobStoreConformanceTest,
                                   CommitsRaceDeletesInOneDirectory)

TEST_F(EncryptedBlobStoreConformanceTest, ListDeleteMoveWithMovedBlobsUnreadable) {
  auto& store = *store_;
  ASSERT_OK(store.WriteAll("m/s1/o1", "1"));
  ASSERT_OK(store.WriteAll("m/s1/o2", "22"));
  ASSERT_OK(store.WriteAll("m/s2/o1", "333"));
  ASSERT_OK_AND_ASSIGN(auto s1, store.List("m/s1/"));
  ASSERT_EQ(s1.size(), 2u);
  EXPECT_EQ(s1[0].name, "m/s1/o1");
  EXPECT_EQ(s1[1].size, 2) << "List reports plaintext sizes";
  ASSERT_OK(store.Delete("m/s1/o1"));
  ASSERT_OK(store.Delete("m/s1/o1"));
  EXPECT_EQ(store.List("m/s1/")->size(), 1u);

  // (A target name of the same length, so that only the name itself tells them apart.)
  ASSERT_OK(store.Move("m/s2/o1", "q/s2/o1"));
  EXPECT_TRUE(store.OpenReader("m/s2/o1").status().IsKeyError());
  auto moved = store.ReadAll("q/s2/o1");
  EXPECT_TRUE(IsTampered(moved.status())) << moved.status();
  EXPECT_EQ(store.List("q/")->at(0).size, 3);
  ASSERT_OK(store.Move("q/s2/o1", "m/s2/o1"));  // back under its own name
  EXPECT_EQ(*store.ReadAll("m/s2/o1"), "333");
  EXPECT_TRUE(store.Move("missing/x", "y/z").IsKeyError());
}

class EncryptedBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ASSERT_OK_AND_ASSIGN(inner_, LocalBlobStore::Open(dir_));
    ASSERT_OK_AND_ASSIGN(store_, EncryptedBlobStore::Make(inner_, TestKey('a')));
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string PathOf(const std::string& name) const { return dir_ + "/" + name; }

  // Reads `name` every way a caller can: at open, chunk by chunk, across chunks, whole.
  // Succeeds if no read returned bytes other than `plain`'s and one failed with IsTampered.
  ::testing::AssertionResult DetectsTampering(const std::string& name, const std::string& plain,
                                              BlobStore* store = nullptr) {
    if (store == nullptr) store = store_.get();
    auto file = store->OpenReader(name);
    if (!file.ok()) {
      if (IsTampered(file.status())) return ::testing::AssertionSuccess();
      return ::testing::AssertionFailure() << "not flagged as tampering: " << file.status();
    }
    bool detected = false;
    auto check = [&](int64_t position, int64_t length) -> ::testing::AssertionResult {
      auto got = (*file)->ReadAt(position, length);
      if (!got.ok()) {
        if (!IsTampered(got.status())) {
          return ::testing::AssertionFailure() << "not flagged as tampering: " << got.status();
        }
        detected = true;
        return ::testing::AssertionSuccess();
      }
      const auto& buffer = **got;
      if (position + buffer.size() > static_cast<int64_t>(plain.size()) ||
          buffer.ToString() != plain.substr(position, buffer.size())) {
        return ::testing::AssertionFailure() << "wrong bytes at " << position;
      }
      return ::testing::AssertionSuccess();
    };
    const int64_t size = *(*file)->GetSize();
    for (int64_t position = 0; position <= size; position += kChunk) {
      auto result = check(position, kChunk);
      if (!result) return result;
      if (position > 0 && !(result = check(position - 10, 20))) return result;
    }
    if (auto result = check(0, size); !result) return result;
    if (!detected) return ::testing::AssertionFailure() << "tampering not detected";
    return ::testing::AssertionSuccess();
  }

  std::string dir_;
  std::shared_ptr<LocalBlobStore> inner_;
  std::shared_ptr<EncryptedBlobStore> store_;
};

TEST_F(EncryptedBlobStoreTest, SizesMapBothWays) {
  EXPECT_EQ(EncryptedBlobStore::CiphertextSize(0), kHeader + kTag);
  EXPECT_EQ(EncryptedBlobStore::CiphertextSize(kChunk), kHeader + kChunk + kTag);
  EXPECT_EQ(EncryptedBlobStore::CiphertextSize(kChunk + 1), kHeader + kChunk + 1 + 2 * kTag);
  for (int64_t size = 0; size < 5 * kChunk; size += (size < 3 * kChunk ? 1 : 97)) {
    ASSERT_EQ(EncryptedBlobStore::PlaintextSize(EncryptedBlobStore::CiphertextSize(size)), size);
  }
  for (int64_t bad : {int64_t{0}, kHeader, kHeader + kTag - 1, kHeader + kChunk + kTag + 1,
                      kHeader + kChunk + kTag + kTag, kHeader + 2 * (kChunk + kTag) + 5}) {
    EXPECT_EQ(EncryptedBlobStore::PlaintextSize(bad), -1) << bad;
  }
}

TEST_F(EncryptedBlobStoreTest, RoundTripsEverySize) {
  const std::string big = RandomBytes(5 << 20);
  for (int64_t size : {int64_t{0}, int64_t{1}, kChunk - 1, kChunk, kChunk + 1, 3 * kChunk,
                       3 * kChunk + 17, int64_t{5 << 20}}) {
    const std::string plain = big.substr(0, size);
    const std::string name = "r/" + std::to_string(size);
    // Written in one call and in uneven pieces.
    for (int64_t piece : {size, int64_t{1000}, kChunk + 3}) {
      ASSERT_OK_AND_ASSIGN(auto writer, store_->OpenWriter(name));
      EXPECT_EQ(writer->key_id(), store_->current_key_id());
      for (int64_t at = 0; at < size; at += std::max<int64_t>(piece, 1)) {
        ASSERT_OK(writer->Write(plain.data() + at, std::min(piece, size - at)));
      }
      EXPECT_EQ(*writer->Tell(), size);
      ASSERT_OK(writer->Commit());
      ASSERT_OK_AND_ASSIGN(auto back, store_->ReadAll(name));
      ASSERT_EQ(back.size(), plain.size());
      ASSERT_TRUE(back == plain) << "size " << size << " piece " << piece;
      ASSERT_OK_AND_ASSIGN(back, store_->ReadAll(name, BlobHint{size, writer->key_id()}));
      ASSERT_TRUE(back == plain);
      EXPECT_EQ(static_cast<int64_t>(fs::file_size(PathOf(name))),
                EncryptedBlobStore::CiphertextSize(size));
    }
    ASSERT_OK_AND_ASSIGN(auto listed, store_->List(name));
    ASSERT_EQ(listed.size(), 1u);
    EXPECT_EQ(listed[0].size, size) << "List reports plaintext sizes";
  }
}

TEST_F(EncryptedBlobStoreTest, RandomAccessAtChunkBoundaries) {
  const std::string plain = RandomBytes(4 * kChunk + 100, 7);
  ASSERT_OK(store_->WriteAll("ra/blob", plain));
  ASSERT_OK_AND_ASSIGN(auto file, store_->OpenReader("ra/blob"));
  EXPECT_EQ(*file->GetSize(), static_cast<int64_t>(plain.size()));
  for (int64_t boundary = 0; boundary <= 5 * kChunk; boundary += kChunk) {
    for (int64_t position = std::max<int64_t>(0, boundary - 3); position <= boundary + 3;
         ++position) {
      for (int64_t length : {int64_t{0}, int64_t{1}, int64_t{3}, int64_t{7}, kChunk,
                             kChunk + 10, 3 * kChunk}) {
        ASSERT_OK_AND_ASSIGN(auto got, file->ReadAt(position, length));
        const std::string expected =
            position < static_cast<int64_t>(plain.size()) ? plain.substr(position, length) : "";
        ASSERT_TRUE(got->ToString() == expected) << position << "+" << length;
        std::string copy(length, '\0');
        ASSERT_OK_AND_ASSIGN(int64_t n, file->ReadAt(position, length, copy.data()));
        ASSERT_EQ(copy.substr(0, n), expected);
      }
    }
  }
  // Reads inside one chunk are slices of one decrypted chunk, not copies.
  ASSERT_OK_AND_ASSIGN(auto a, file->ReadAt(kChunk + 8, 100));
  ASSERT_OK_AND_ASSIGN(auto b, file->ReadAt(kChunk + 1000, 100));
  EXPECT_EQ(b->data() - a->data(), 992);
  EXPECT_TRUE(file->ReadAt(plain.size(), 10, /*allow_short_read=*/false).status().IsIOError());
  // Sequential reads.
  ASSERT_OK(file->Seek(kChunk - 5));
  ASSERT_OK_AND_ASSIGN(auto first, file->Read(10));
  ASSERT_OK_AND_ASSIGN(auto second, file->Read(10));
  EXPECT_EQ(first->ToString() + second->ToString(), plain.substr(kChunk - 5, 20));
  EXPECT_EQ(*file->Tell(), kChunk + 15);
}

TEST_F(EncryptedBlobStoreTest, ConcurrentReadAtSeesTheRightBytes) {
  const std::string plain = RandomBytes(8 * kChunk + 123, 9);
  ASSERT_OK(store_->WriteAll("c/blob", plain));
  ASSERT_OK_AND_ASSIGN(auto file, store_->OpenReader("c/blob"));
  std::vector<std::string> errors(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < 400 && errors[t].empty(); ++i) {
        int64_t position = rng() % plain.size();
        int64_t length = rng() % (2 * kChunk);
        auto got = file->ReadAt(position, length);
        if (!got.ok() || (*got)->ToString() != plain.substr(position, length)) {
          errors[t] = "read at " + std::to_string(position) + " went wrong";
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& error : errors) EXPECT_EQ(error, "");
}

TEST_F(EncryptedBlobStoreTest, IpcStreamReadsBackThroughTheMessageReader) {
  auto schema =
      arrow::schema({arrow::field("x", arrow::int64()), arrow::field("s", arrow::utf8())});
  arrow::Int64Builder xs;
  arrow::StringBuilder ss;
  for (int64_t i = 0; i < 50000; ++i) {
    ASSERT_OK(xs.Append(i * 3));
    ASSERT_OK(ss.Append("row-" + std::to_string(i)));
  }
  auto batch = arrow::RecordBatch::Make(schema, 50000, {*xs.Finish(), *ss.Finish()});
  {
    ASSERT_OK_AND_ASSIGN(std::shared_ptr<BlobWriter> writer, store_->OpenWriter("ipc/stream"));
    ASSERT_OK_AND_ASSIGN(auto ipc, arrow::ipc::MakeStreamWriter(writer, schema));
    for (int i = 0; i < 3; ++i) ASSERT_OK(ipc->WriteRecordBatch(*batch));
    ASSERT_OK(ipc->Close());
    ASSERT_OK(writer->Commit());
  }
  ASSERT_OK_AND_ASSIGN(auto file, store_->OpenReader("ipc/stream"));
  ASSERT_OK_AND_ASSIGN(auto input,
                       arrow::io::RandomAccessFile::GetStream(file, 0, *file->GetSize()));
  ASSERT_OK_AND_ASSIGN(auto reader, arrow::ipc::RecordBatchStreamReader::Open(input));
  int batches = 0;
  while (true) {
    ASSERT_OK_AND_ASSIGN(auto read, reader->Next());
    if (!read) break;
    EXPECT_TRUE(read->Equals(*batch));
    ++batches;
  }
  EXPECT_EQ(batches, 3);
}

TEST_F(EncryptedBlobStoreTest, BytesOnDiskHoldNeitherPlaintextNorKey) {
  std::string plain;
  while (plain.size() < 3 * kChunk) plain += "SECRET-PLAINTEXT-" + std::to_string(plain.size());
  ASSERT_OK(store_->WriteAll("d/secret", plain));
  const std::string disk = ReadFile(PathOf("d/secret"));
  EXPECT_EQ(disk.find("SECRET-PLAINTEXT"), std::string::npos);
  EXPECT_EQ(disk.find(TestKey('a').bytes.substr(0, 8)), std::string::npos);
  EXPECT_EQ(disk.substr(0, 8), "QUIVRENC");
  EXPECT_EQ(disk.substr(16, 16), store_->current_key_id());
  // Two blobs of the same plaintext differ (a fresh salt each).
  ASSERT_OK(store_->WriteAll("d/again", plain));
  EXPECT_NE(ReadFile(PathOf("d/again")).substr(kHeader), disk.substr(kHeader));
}

TEST_F(EncryptedBlobStoreTest, DescribeNamesTheKey) {
  EXPECT_EQ(store_->Describe(), "local:" + dir_ + " (aes-256-gcm, key " + TestKey('a').id + ")");
}

// A blob of three full chunks and a short last one.
class EncryptedBlobTamperTest : public EncryptedBlobStoreTest {
 protected:
  void SetUp() override {
    EncryptedBlobStoreTest::SetUp();
    plain_ = RandomBytes(3 * kChunk + 1000, 3);
    ASSERT_OK(store_->WriteAll(kName, plain_));
    disk_ = ReadFile(PathOf(kName));
    ASSERT_EQ(static_cast<int64_t>(disk_.size()),
              EncryptedBlobStore::CiphertextSize(plain_.size()));
  }
  int64_t ChunkOffset(int64_t index) const { return kHeader + index * (kChunk + kTag); }
  std::string SealedChunk(int64_t index) const {
    return disk_.substr(ChunkOffset(index), kChunk + kTag);
  }
  ::testing::AssertionResult DetectsOnDisk(const std::string& bytes) {
    WriteFile(PathOf(kName), bytes);
    auto result = DetectsTampering(kName, plain_);
    WriteFile(PathOf(kName), disk_);
    return result;
  }

  static constexpr const char* kName = "t/blob";
  std::string plain_;
  std::string disk_;
};

TEST_F(EncryptedBlobTamperTest, UntouchedBlobReads) {
  EXPECT_EQ(*store_->ReadAll(kName), plain_);
  EXPECT_FALSE(DetectsTampering(kName, plain_)) << "a sound blob must read";
}

TEST_F(EncryptedBlobTamperTest, AFlippedByteAnywhereIsDetected) {
  std::vector<int64_t> positions;
  for (int64_t i = 0; i < kHeader; ++i) positions.push_back(i);  // every header byte
  for (int64_t chunk = 0; chunk < 4; ++chunk) {
    const int64_t start = ChunkOffset(chunk);
    const int64_t end = std::min<int64_t>(start + kChunk + kTag, disk_.size());
    for (int64_t i = start; i < start + 8; ++i) positions.push_back(i);
    for (int64_t i = start; i < end; i += 4099) positions.push_back(i);
    for (int64_t i = end - kTag - 4; i < end; ++i) positions.push_back(i);  // every tag byte
  }
  for (int64_t position : positions) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}}) {
      std::string bytes = disk_;
      bytes[position] = static_cast<char>(bytes[position] ^ mask);
      const bool key_id = position >= 16 && position < 32;
      if (key_id && std::isxdigit(static_cast<unsigned char>(bytes[position]))) {
        // Another well-formed key id: a key this store does not have. Without that key it
        // cannot be told from a blob of another node's key: never served, but not taken
        // for damage (see encrypted_blob_store.h).
        WriteFile(PathOf(kName), bytes);
        auto st = store_->ReadAll(kName).status();
        WriteFile(PathOf(kName), disk_);
        ASSERT_TRUE(st.IsIOError()) << "flipped byte " << position << ": " << st;
        ASSERT_NE(st.message().find("which is not configured"), std::string::npos) << st;
        continue;
      }
      ASSERT_TRUE(DetectsOnDisk(bytes)) << "flipped byte " << position;
    }
  }
}

TEST_F(EncryptedBlobTamperTest, TruncationAnywhereIsDetected) {
  std::vector<int64_t> lengths = {0, 1, kHeader - 1, kHeader, kHeader + 1,
                                  static_cast<int64_t>(disk_.size()) - 1};
  for (int64_t chunk = 0; chunk <= 3; ++chunk) {
    const int64_t start = ChunkOffset(chunk);
    for (int64_t delta : {int64_t{0}, int64_t{1}, int64_t{kTag - 1}, int64_t{kTag},
                          int64_t{kTag + 1}, kChunk / 2, kChunk, kChunk + kTag - 1}) {
      if (start + delta < static_cast<int64_t>(disk_.size())) lengths.push_back(start + delta);
    }
  }
  for (int64_t length : lengths) {
    ASSERT_TRUE(DetectsOnDisk(disk_.substr(0, length))) << "truncated to " << length;
  }
  // Dropping the last chunk leaves a blob of three full chunks, the last not marked final.
  ASSERT_TRUE(DetectsOnDisk(disk_.substr(0, ChunkOffset(3))));
  // So does a recorded size that disagrees with the file.
  auto st = store_->OpenReader(kName, BlobHint{static_cast<int64_t>(plain_.size()) - 1, ""});
  EXPECT_TRUE(IsTampered(st.status())) << st.status();
}

TEST_F(EncryptedBlobTamperTest, ReorderedOrDuplicatedChunksAreDetected) {
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      if (i == j) continue;
      std::string swapped = disk_;
      swapped.replace(ChunkOffset(i), kChunk + kTag, SealedChunk(j));
      swapped.replace(ChunkOffset(j), kChunk + kTag, SealedChunk(i));
      ASSERT_TRUE(DetectsOnDisk(swapped)) << "swapped " << i << " and " << j;
      std::string duplicated = disk_;
      duplicated.replace(ChunkOffset(j), kChunk + kTag, SealedChunk(i));
      ASSERT_TRUE(DetectsOnDisk(duplicated)) << "chunk " << i << " copied over " << j;
    }
    std::string inserted = disk_;
    inserted.insert(ChunkOffset(i + 1), SealedChunk(i));
    ASSERT_TRUE(DetectsOnDisk(inserted)) << "chunk " << i << " repeated";
    std::string dropped = disk_;
    dropped.erase(ChunkOffset(i), kChunk + kTag);
    ASSERT_TRUE(DetectsOnDisk(dropped)) << "chunk " << i << " dropped";
  }
}

TEST_F(EncryptedBlobTamperTest, FilesSwappedBetweenNamesAreDetected) {
  const std::string other = RandomBytes(plain_.size(), 4);
  ASSERT_OK(store_->WriteAll("t/bleb", other));
  ASSERT_EQ(fs::file_size(PathOf("t/bleb")), disk_.size());
  // Splice: the other blob's chunks after this blob's header, and the reverse.
  const std::string other_disk = ReadFile(PathOf("t/bleb"));
  ASSERT_TRUE(DetectsOnDisk(disk_.substr(0, kHeader) + other_disk.substr(kHeader)));
  ASSERT_TRUE(DetectsOnDisk(other_disk.substr(0, kHeader) + disk_.substr(kHeader)));
  // The whole file renamed over another name.
  fs::rename(PathOf("t/bleb"), PathOf(kName));
  EXPECT_TRUE(DetectsTampering(kName, plain_));
  EXPECT_TRUE(DetectsTampering(kName, other));
}

TEST_F(EncryptedBlobTamperTest, OtherKeysAndRotation) {
  // A blob written with key b, read by a store that knows only key a.
  ASSERT_OK_AND_ASSIGN(auto with_b, EncryptedBlobStore::Make(inner_, TestKey('b')));
  ASSERT_OK(with_b->WriteAll("k/b", plain_));
  auto st = store_->ReadAll("k/b").status();
  // Not served, but not damage either: the key may be configured on other nodes, or later.
  EXPECT_TRUE(st.IsIOError()) << st;
  EXPECT_FALSE(IsTampered(st)) << st;
  EXPECT_NE(st.message().find(TestKey('b').id), std::string::npos) << st;
  EXPECT_EQ(st.message().find(TestKey('b').bytes), std::string::npos);
  // ...and with its header claiming key a.
  std::string forged = ReadFile(PathOf("k/b"));
  forged.replace(16, 16, TestKey('a').id);
  WriteFile(PathOf("k/b"), forged);
  EXPECT_TRUE(DetectsTampering("k/b", plain_));

  // Rotation: b is current, a is old. Old blobs read, new ones use b.
  ASSERT_OK_AND_ASSIGN(auto rotated,
                       EncryptedBlobStore::Make(inner_, TestKey('b'), {TestKey('a')}));
  EXPECT_EQ(*rotated->ReadAll(kName), plain_);
  ASSERT_OK_AND_ASSIGN(auto writer, rotated->OpenWriter("k/new"));
  EXPECT_EQ(writer->key_id(), TestKey('b').id);
  ASSERT_OK(writer->Write("fresh", 5));
  ASSERT_OK(writer->Commit());
  EXPECT_EQ(ReadFile(PathOf("k/new")).substr(16, 16), TestKey('b').id);
  EXPECT_EQ(*rotated->ReadAll("k/new"), "fresh");
  EXPECT_EQ(*with_b->ReadAll("k/new"), "fresh");
  auto lacks = store_->ReadAll("k/new").status();
  EXPECT_TRUE(lacks.IsIOError() && !IsTampered(lacks)) << "a's store lacks key b: " << lacks;

  // A key whose id is not its fingerprint is refused.
  EncryptionKey wrong = TestKey('c');
  wrong.id = TestKey('a').id;
  EXPECT_TRUE(EncryptedBlobStore::Make(inner_, wrong).status().IsInvalid());
}

// Not run by default: prints encrypt/decrypt throughput over a memory store.
//   ./quiver_encrypted_blob_store_test --gtest_also_run_disabled_tests
//       --gtest_filter='*Throughput*'
TEST(EncryptedBlobStoreBench, DISABLED_Throughput) {
  auto memory = std::make_shared<MemoryBlobStore>();
  ASSERT_OK_AND_ASSIGN(auto store, EncryptedBlobStore::Make(memory, TestKey('a')));
  const std::string plain = RandomBytes(64 << 20);
  constexpr int kRounds = 8;
  auto seconds = [](auto start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  // The best MB/s of kRounds writes of `plain` to `target`, and of kRounds reads of it in
  // 1 MiB pieces (best, not mean: the machine is shared, the best round is the least
  // disturbed one).
  auto measure = [&](BlobStore* target, double* write_mbs, double* read_mbs) {
    for (int i = 0; i < kRounds; ++i) {
      auto start = std::chrono::steady_clock::now();
      ASSERT_OK_AND_ASSIGN(auto writer, target->OpenWriter("bench/blob"));
      for (size_t at = 0; at < plain.size(); at += 1 << 20) {
        ASSERT_OK(writer->Write(plain.data() + at, 1 << 20));
      }
      ASSERT_OK(writer->Commit());
      *write_mbs = std::max(*write_mbs, plain.size() / seconds(start) / 1e6);
    }
    for (int i = 0; i < kRounds; ++i) {
      auto start = std::chrono::steady_clock::now();
      ASSERT_OK_AND_ASSIGN(auto file, target->OpenReader("bench/blob"));
      for (int64_t at = 0; at < static_cast<int64_t>(plain.size()); at += 1 << 20) {
        ASSERT_OK(file->ReadAt(at, 1 << 20).status());
      }
      *read_mbs = std::max(*read_mbs, plain.size() / seconds(start) / 1e6);
    }
  };
  double encrypt = 0, decrypt = 0, write = 0, read = 0;
  measure(memory.get(), &write, &read);  // warms the allocator up too
  measure(store.get(), &encrypt, &decrypt);
  std::printf("plain memory store: write %.0f MB/s\n", write);
  std::printf("encrypt %.0f MB/s, decrypt %.0f MB/s (best of %d x %zu MiB, 1 MiB writes/reads)\n",
              encrypt, decrypt, kRounds, plain.size() >> 20);
}

}  // namespace
}  // namespace quiver
