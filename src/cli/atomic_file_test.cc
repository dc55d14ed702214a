#include "cli/atomic_file.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

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

  static mode_t Mode(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }
  static void Write(const std::string& path, const std::string& text) {
    auto file = AtomicFile::Create(path).ValueOrDie();
    ASSERT_TRUE(file->stream()->Write(text).ok());
    ASSERT_TRUE(file->Commit().ok());
  }

  fs::path dir_;
  std::string target_;
};

// The disposition of `sig` as a handler pointer (SIG_DFL, SIG_IGN or a function).
void (*Disposition(int sig))(int) {
  struct sigaction now {};
  sigaction(sig, nullptr, &now);
  return now.sa_handler;
}

void CustomHandler(int) {}

// Runs the test body with the given umask, and restores the previous one.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : previous_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(previous_); }

 private:
  mode_t previous_;
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

TEST_F(AtomicFileTest, IgnoredSignalsStayIgnoredAndDispositionsAreRestored) {
  // nohup ignores SIGHUP; a caller may have its own SIGTERM handler.
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGTERM, CustomHandler);
  ::signal(SIGINT, SIG_DFL);
  {
    auto file = AtomicFile::Create(target_).ValueOrDie();
    EXPECT_EQ(Disposition(SIGHUP), SIG_IGN);
    EXPECT_NE(Disposition(SIGTERM), CustomHandler);  // removes the temporary file
    EXPECT_NE(Disposition(SIGINT), SIG_DFL);
  }
  EXPECT_EQ(Disposition(SIGHUP), SIG_IGN);
  EXPECT_EQ(Disposition(SIGTERM), CustomHandler);
  EXPECT_EQ(Disposition(SIGINT), SIG_DFL);
  // A second file in the same process saves the restored dispositions, not its own.
  { auto again = AtomicFile::Create(target_).ValueOrDie(); }
  EXPECT_EQ(Disposition(SIGTERM), CustomHandler);
  ::signal(SIGHUP, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
}

TEST_F(AtomicFileTest, ReplacedFileKeepsItsMode) {
  ScopedUmask umask(077);  // fchmod, not the umask, decides for an existing file
  for (mode_t mode : {0600, 0640, 0664, 0755}) {
    ASSERT_EQ(::chmod(target_.c_str(), mode), 0);
    Write(target_, "new");
    EXPECT_EQ(Mode(target_), mode);
  }
  EXPECT_EQ(Content(), "new");
}

TEST_F(AtomicFileTest, NewFileGetsTheUmaskMode) {
  ScopedUmask umask(027);
  const std::string fresh = (dir_ / "fresh.csv").string();
  Write(fresh, "x");
  EXPECT_EQ(Mode(fresh), 0640u);
}

TEST_F(AtomicFileTest, SymlinkTargetIsWrittenThroughAndStaysALink) {
  ASSERT_EQ(::chmod(target_.c_str(), 0600), 0);
  fs::create_directory(dir_ / "links");
  const fs::path link = dir_ / "links" / "out.link";
  fs::create_symlink("../out.bin", link);
  Write(link.string(), "through the link");
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(fs::read_symlink(link), fs::path("../out.bin"));
  EXPECT_EQ(Content(), "through the link");
  EXPECT_EQ(Mode(target_), 0600u);
  EXPECT_EQ(Entries(), 2u);  // out.bin and links/, no temporary file anywhere
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "links"), fs::directory_iterator()), 1);
}

TEST_F(AtomicFileTest, DanglingSymlinkIsRefused) {
  const fs::path link = dir_ / "dangling.csv";
  fs::create_symlink("nowhere/x.csv", link);
  auto file = AtomicFile::Create(link.string());
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("symlink to a missing file"), std::string::npos)
      << file.status().message();
  EXPECT_TRUE(fs::is_symlink(link));
}

TEST_F(AtomicFileTest, PlantedLinkAtAPredictableTempNameIsNotWrittenThrough) {
  const fs::path victim = dir_ / "victim";
  std::ofstream(victim) << "victim";
  // The name the temporary file once had: .NAME.quiver-PID.tmp
  const fs::path planted = dir_ / (".out.bin.quiver-" + std::to_string(::getpid()) + ".tmp");
  fs::create_symlink(victim, planted);
  Write(target_, "new");
  EXPECT_EQ(Content(), "new");
  std::ifstream in(victim);
  std::string victim_content;
  in >> victim_content;
  EXPECT_EQ(victim_content, "victim");
  EXPECT_TRUE(fs::is_symlink(planted));
}

}  // namespace
}  // namespace quiver
