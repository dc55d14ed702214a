#include "format/checksum.h"

#include <arrow/io/memory.h>
#include <gtest/gtest.h>

namespace quiver {
namespace {

TEST(Checksum, StreamingEqualsWholeAndDetectsChange) {
  std::string data(3 << 20, 'a');
  for (size_t i = 0; i < data.size(); i += 7) data[i] = static_cast<char>(i);
  Checksum whole;
  whole.Update(data.data(), data.size());
  Checksum parts;
  parts.Update(data.data(), 1000);
  parts.Update(data.data() + 1000, data.size() - 1000);
  EXPECT_EQ(whole.HexDigest(), parts.HexDigest());
  EXPECT_EQ(whole.HexDigest().size(), 16u);

  arrow::io::BufferReader reader(arrow::Buffer::FromString(data));
  EXPECT_EQ(*ChecksumFile(&reader), whole.HexDigest());

  data[12345] ^= 1;
  Checksum flipped;
  flipped.Update(data.data(), data.size());
  EXPECT_NE(flipped.HexDigest(), whole.HexDigest());
}

}  // namespace
}  // namespace quiver
