#include "cli/atomic_file.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace quiver {
namespace {

namespace fs = std::filesystem;

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "quiver-atomic-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    target_ = (dir_ / "out.bin").string();
    std::ofstream(target_) << "old";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Content() const {
    std::ifstream in(target_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  size_t Entries() const {
    return std::distance(fs::directory_iterator(dir_), fs::directory_iterator());
  }

  fs::path dir_;
  std::string target_;
};

TEST_F(AtomicFileTest, WithoutCommitNothingChangesAndNoTempFileStays) {
  {
    auto file = AtomicFile::Create(target_).ValueOrDie();
    ASSERT_TRUE(file->stream()->Write("new, but never committed").ok());
    EXPECT_EQ(Entries(), 2u);  // the target and the temporary file beside it
  }
  EXPECT_EQ(Content(), "old");
  EXPECT_EQ(Entries(), 1u);
}

TEST_F(AtomicFileTest, CommitReplacesTheTargetWhole) {
  auto file = AtomicFile::Create(target_).ValueOrDie();
  ASSERT_TRUE(file->stream()->Write("new").ok());
  EXPECT_EQ(Content(), "old");  // not visible before the commit
  ASSERT_TRUE(file->Commit().ok());
  file.reset();
  EXPECT_EQ(Content(), "new");
  EXPECT_EQ(Entries(), 1u);
}

TEST_F(AtomicFileTest, TargetChecksNameTheProblem) {
  auto in_dir = AtomicFile::CheckTarget(dir_.string());
  EXPECT_NE(in_dir.message().find("is a directory"), std::string::npos);
  auto no_dir = AtomicFile::Create((dir_ / "missing" / "x.csv").string());
  EXPECT_NE(no_dir.status().message().find("no directory"), std::string::npos);
  EXPECT_TRUE(AtomicFile::CheckTarget("relative-name.csv").ok());
}

}  // namespace
}  // namespace quiver
