#include "cli/preview.h"

#include <sstream>

#include <arrow/api.h>
#include <gtest/gtest.h>

namespace quiver {
namespace {

std::string Preview(const std::shared_ptr<arrow::Table>& table) {
  std::ostringstream out;
  PrintPreview(*table, table->num_rows(), out);
  return out.str();
}

std::shared_ptr<arrow::Table> OneStringColumn(const std::string& name,
                                              const std::vector<std::string>& values) {
  arrow::StringBuilder builder;
  EXPECT_TRUE(builder.AppendValues(values).ok());
  auto array = builder.Finish().ValueOrDie();
  return arrow::Table::Make(arrow::schema({arrow::field(name, arrow::utf8())}), {array});
}

TEST(PreviewTest, ControlCharactersOfTheDataAreEscaped) {
  const std::string text = Preview(OneStringColumn(
      "col\x1b]0;title\x07", {"\x1b[31mred", "a\nb\tc\rd", "del\x7f", "csi\xc2\x9b" "2J",
                              "caf\xc3\xa9"}));
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    EXPECT_TRUE(c == '\n' || (byte >= 0x20 && byte != 0x7f)) << "raw byte " << int{byte};
  }
  EXPECT_EQ(text.find("\xc2\x9b"), std::string::npos);
  EXPECT_NE(text.find("\\x1b[31mred"), std::string::npos) << text;
  EXPECT_NE(text.find("col\\x1b]0;title\\x07"), std::string::npos) << text;
  EXPECT_NE(text.find("a\\nb\\tc\\rd"), std::string::npos) << text;
  EXPECT_NE(text.find("del\\x7f"), std::string::npos) << text;
  EXPECT_NE(text.find("csi\\u009b2J"), std::string::npos) << text;
  EXPECT_NE(text.find("caf\xc3\xa9"), std::string::npos) << text;  // UTF-8 stays as it is
  // one line per row: a newline in a value does not break the table
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3 + 5 + 1);
}

TEST(PreviewTest, LongValuesAreCutAfterEscaping) {
  const std::string text = Preview(OneStringColumn("s", {std::string(40, '\x01')}));
  EXPECT_NE(text.find("\\x01\\x01...\n"), std::string::npos) << text;
  EXPECT_EQ(text.find('\x01'), std::string::npos);
}

}  // namespace
}  // namespace quiver
