#include "storage/readahead_file.h"

#include <random>
#include <string>

#include <arrow/io/memory.h>
#include <gtest/gtest.h>

#include "common/testing.h"

namespace quiver {
namespace {

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::shared_ptr<ReadaheadFile> Open(const std::string& bytes, int64_t chunk, int depth,
                                    int64_t size = -1) {
  auto inner = std::make_shared<arrow::io::BufferReader>(arrow::Buffer::FromString(bytes));
  return std::make_shared<ReadaheadFile>(inner, size < 0 ? static_cast<int64_t>(bytes.size()) : size,
                                         chunk, depth);
}

TEST(ReadaheadFileTest, SequentialReadsOfAnySizeReturnTheBytesInWholeChunks) {
  const std::string bytes = RandomBytes(1 << 20, 1);
  const int64_t chunk = 64 << 10;
  auto file = Open(bytes, chunk, 3);
  std::mt19937 rng(2);
  std::string got;
  while (true) {
    // Mostly small reads (an IPC prefix, metadata), sometimes larger than a chunk.
    const int64_t n = rng() % 10 == 0 ? 100000 + rng() % 100000 : 1 + rng() % 3000;
    ASSERT_OK_AND_ASSIGN(auto buf, file->Read(n));
    if (buf->size() == 0) break;
    got += buf->ToString();
  }
  EXPECT_EQ(got, bytes);
  // Ranged reads of whole chunks, not one per Read() call.
  EXPECT_EQ(file->chunks_requested(), (int64_t{1} << 20) / chunk);
  ASSERT_OK_AND_ASSIGN(int64_t pos, file->Tell());
  EXPECT_EQ(pos, static_cast<int64_t>(bytes.size()));
}

TEST(ReadaheadFileTest, AStreamOverTheFileReadsAheadToo) {
  // The IPC message reader gets RandomAccessFile::GetStream(), whose reads are ReadAt()s.
  const std::string bytes = RandomBytes(1 << 20, 6);
  const int64_t chunk = 64 << 10;
  auto file = Open(bytes, chunk, 2);
  ASSERT_OK_AND_ASSIGN(auto stream, arrow::io::RandomAccessFile::GetStream(
                                        file, 0, static_cast<int64_t>(bytes.size())));
  std::mt19937 rng(7);
  std::string got;
  while (true) {
    ASSERT_OK_AND_ASSIGN(auto buf, stream->Read(1 + rng() % 5000));
    if (buf->size() == 0) break;
    got += buf->ToString();
  }
  EXPECT_EQ(got, bytes);
  EXPECT_EQ(file->chunks_requested(), (int64_t{1} << 20) / chunk);
}

TEST(ReadaheadFileTest, ReadsBelowTheDirectBoundGoStraightToTheFile) {
  const std::string bytes = RandomBytes(1 << 20, 8);
  auto inner = std::make_shared<arrow::io::BufferReader>(arrow::Buffer::FromString(bytes));
  auto file = std::make_shared<ReadaheadFile>(inner, static_cast<int64_t>(bytes.size()),
                                              64 << 10, 2, /*direct_below=*/256 << 10);
  ASSERT_OK_AND_ASSIGN(auto head, file->Read(1000));  // a schema message, say
  EXPECT_EQ(head->ToString(), bytes.substr(0, 1000));
  EXPECT_EQ(file->chunks_requested(), 0);
  std::string got = head->ToString();
  while (true) {
    ASSERT_OK_AND_ASSIGN(auto buf, file->Read(3000));
    if (buf->size() == 0) break;
    got += buf->ToString();
  }
  EXPECT_EQ(got, bytes);
  EXPECT_LE(file->chunks_requested(), 13);  // the 768 KiB past the bound, plus a straddle
}

TEST(ReadaheadFileTest, SeeksBackAndForthAndReadAtStayCorrect) {
  const std::string bytes = RandomBytes(300000, 3);
  auto file = Open(bytes, 4096, 2);
  std::mt19937 rng(4);
  for (int i = 0; i < 200; ++i) {
    const int64_t pos = rng() % bytes.size();
    const int64_t n = 1 + rng() % 10000;
    ASSERT_OK(file->Seek(pos));
    ASSERT_OK_AND_ASSIGN(auto buf, file->Read(n));
    ASSERT_EQ(buf->ToString(), bytes.substr(pos, n)) << "seek " << pos << " read " << n;
    const int64_t at = rng() % bytes.size();
    ASSERT_OK_AND_ASSIGN(auto direct, file->ReadAt(at, 77));
    ASSERT_EQ(direct->ToString(), bytes.substr(at, 77));
    ASSERT_OK_AND_ASSIGN(int64_t tell, file->Tell());
    ASSERT_EQ(tell, pos + static_cast<int64_t>(buf->size())) << "ReadAt moved the position";
  }
  EXPECT_FALSE(file->Seek(static_cast<int64_t>(bytes.size()) + 1).ok());
}

TEST(ReadaheadFileTest, AnInnerFileShorterThanRecordedIsAnError) {
  const std::string bytes = RandomBytes(10000, 5);
  auto file = Open(bytes, 4096, 2, /*size=*/20000);
  std::string got;
  arrow::Status failed;
  while (true) {
    auto buf = file->Read(1000);
    if (!buf.ok()) {
      failed = buf.status();
      break;
    }
    if ((*buf)->size() == 0) break;
    got += (*buf)->ToString();
  }
  EXPECT_TRUE(failed.IsIOError()) << failed.ToString();
  EXPECT_NE(failed.message().find("shorter than its recorded 20000 bytes"), std::string::npos)
      << failed.ToString();
  EXPECT_EQ(got, bytes.substr(0, got.size()));
}

}  // namespace
}  // namespace quiver
