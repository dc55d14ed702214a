// ArtifactSource on local files: which URLs are allowed, what a fetch returns, and how it fails.
#include "exec/artifact_source.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <sys/stat.h>

#include <arrow/api.h>
#include <arrow/io/file.h>
#include <arrow/ipc/writer.h>
#include <nlohmann/json.hpp>

#include "common/rejection.h"
#include "common/testing.h"

namespace quiver {
namespace {

namespace fs = std::filesystem;

class ArtifactSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quiver-artifact-test-XXXXXX";
    root_ = ::mkdtemp(tmpl);
    fs::create_directories(root_ + "/allowed/sub");
    fs::create_directories(root_ + "/secret");
    Write("/allowed/t.csv", "id,name\n1,one\n2,two\n");
    Write("/allowed/bad.feather", "this is not an Arrow file");
    Write("/secret/s.csv", "x\n1\n");
    ArtifactSourceOptions options;
    options.allowed_prefixes = {"file://" + root_ + "/allowed/"};
    options.pool.max_workers = 1;
    options.pool.max_queue = 1;
    // Bounds a fetch that would block (a pipe), so that such a test fails instead of hanging.
    options.timeout_s = 10;
    auto source = ArtifactSource::Make(options);
    ASSERT_TRUE(source.ok()) << source.status();
    source_ = *source;
  }
  void TearDown() override { fs::remove_all(root_); }

  void Write(const std::string& rel, const std::string& text) {
    std::ofstream(root_ + rel, std::ios::binary) << text;
  }
  std::string Url(const std::string& rel) const { return "file://" + root_ + rel; }

  arrow::Result<std::shared_ptr<arrow::Table>> Fetch(const std::string& url,
                                                     const std::string& format = "") {
    ARROW_ASSIGN_OR_RAISE(auto target, source_->Check(url, format));
    ARROW_ASSIGN_OR_RAISE(auto stream, source_->Execute(target.canonical, nullptr));
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
    while (true) {
      ARROW_ASSIGN_OR_RAISE(auto batch, stream->Next());
      if (!batch) break;
      batches.push_back(batch);
    }
    return arrow::Table::FromRecordBatches(stream->schema(), batches);
  }

  std::string root_;
  std::shared_ptr<ArtifactSource> source_;
};

TEST_F(ArtifactSourceTest, ReadsCsvAndRecordsWhereItCameFrom) {
  ASSERT_OK_AND_ASSIGN(auto table, Fetch(Url("/allowed/t.csv")));
  EXPECT_EQ(table->num_rows(), 2);
  EXPECT_EQ(table->schema()->field(1)->name(), "name");
  auto meta = table->schema()->metadata();
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(*meta->Get("quiver.artifact.url"), Url("/allowed/t.csv"));
  EXPECT_EQ(*meta->Get("quiver.artifact.format"), "csv");
  EXPECT_EQ(*meta->Get("quiver.artifact.size"),
            std::to_string(fs::file_size(root_ + "/allowed/t.csv")));
  EXPECT_GT(std::stoll(*meta->Get("quiver.artifact.mtime_ms")), 0);
  EXPECT_EQ(source_->stats().fetches, 1);
}

TEST_F(ArtifactSourceTest, ReadsAnIpcFile) {
  auto schema = arrow::schema({arrow::field("v", arrow::int64())});
  arrow::Int64Builder builder;
  ASSERT_OK(builder.AppendValues({1, 2, 3}));
  ASSERT_OK_AND_ASSIGN(auto array, builder.Finish());
  auto batch = arrow::RecordBatch::Make(schema, 3, {array});
  ASSERT_OK_AND_ASSIGN(auto out, arrow::io::FileOutputStream::Open(root_ + "/allowed/v.arrow"));
  ASSERT_OK_AND_ASSIGN(auto writer, arrow::ipc::MakeFileWriter(out, schema));
  ASSERT_OK(writer->WriteRecordBatch(*batch));
  ASSERT_OK(writer->Close());
  ASSERT_OK(out->Close());
  ASSERT_OK_AND_ASSIGN(auto table, Fetch(Url("/allowed/v.arrow")));
  ASSERT_OK_AND_ASSIGN(auto expected, arrow::Table::FromRecordBatches(schema, {batch}));
  EXPECT_TRUE(table->Equals(*expected, /*check_metadata=*/false));
}

// A file's own quiver.artifact.* schema metadata would otherwise be found before the
// server's and claim another origin.
TEST_F(ArtifactSourceTest, AFileCannotForgeItsProvenance) {
  auto schema = arrow::schema({arrow::field("v", arrow::int64())},
                              arrow::key_value_metadata({"quiver.artifact.url", "owner",
                                                         "quiver.artifact.etag"},
                                                        {"s3://trusted/r.arrow", "kept", "\"x\""}));
  arrow::Int64Builder builder;
  ASSERT_OK(builder.AppendValues({1}));
  ASSERT_OK_AND_ASSIGN(auto array, builder.Finish());
  ASSERT_OK_AND_ASSIGN(auto out, arrow::io::FileOutputStream::Open(root_ + "/allowed/f.arrow"));
  ASSERT_OK_AND_ASSIGN(auto writer, arrow::ipc::MakeFileWriter(out, schema));
  ASSERT_OK(writer->WriteRecordBatch(*arrow::RecordBatch::Make(schema, 1, {array})));
  ASSERT_OK(writer->Close());
  ASSERT_OK(out->Close());
  ASSERT_OK_AND_ASSIGN(auto table, Fetch(Url("/allowed/f.arrow")));
  auto meta = table->schema()->metadata();
  EXPECT_EQ(*meta->Get("quiver.artifact.url"), Url("/allowed/f.arrow"));
  EXPECT_EQ(meta->FindKey("quiver.artifact.etag"), -1);  // local files have none
  EXPECT_EQ(*meta->Get("owner"), "kept");
  int urls = 0;
  for (int64_t i = 0; i < meta->size(); ++i) urls += meta->key(i) == "quiver.artifact.url";
  EXPECT_EQ(urls, 1);
}

TEST_F(ArtifactSourceTest, RefusesUrlsOutsideTheAllowedPrefixes) {
  for (const std::string& url :
       {Url("/secret/s.csv"), Url("/allowed/../secret/s.csv"), Url("/allowedx.csv"),
        std::string("file:///etc/passwd"), std::string("s3://bucket/k.csv"),
        Url("/allowed/t.csv") + "?x=1", std::string("/abs/path.csv")}) {
    auto checked = source_->Check(url, "csv");
    EXPECT_TRUE(checked.status().IsInvalid()) << url << ": " << checked.status();
    EXPECT_NE(checked.status().message().find(url), std::string::npos) << checked.status();
  }
}

// The refusal must not tell a client which prefixes are allowed (the server's own paths).
TEST_F(ArtifactSourceTest, ARefusalDoesNotListTheAllowedPrefixes) {
  auto checked = source_->Check("file:///etc/passwd", "csv");
  ASSERT_TRUE(checked.status().IsInvalid()) << checked.status();
  EXPECT_NE(checked.status().message().find("not under an allowed prefix"), std::string::npos)
      << checked.status();
  EXPECT_EQ(checked.status().message().find(root_), std::string::npos) << checked.status();
}

// URL schemes are case-insensitive: FILE:// is file://, normalized to lower case.
TEST_F(ArtifactSourceTest, SchemesAreCaseInsensitive) {
  ASSERT_OK_AND_ASSIGN(auto target, source_->Check("FILE://" + root_ + "/allowed/t.csv", ""));
  EXPECT_EQ(target.url, Url("/allowed/t.csv"));
  ASSERT_OK_AND_ASSIGN(auto table, Fetch("File://" + root_ + "/allowed/t.csv"));
  EXPECT_EQ(table->num_rows(), 2);
  auto refused = source_->Check("FILE:///etc/passwd", "");
  EXPECT_NE(refused.status().message().find("not allowed"), std::string::npos) << refused.status();
}

TEST_F(ArtifactSourceTest, RefusesASymlinkThatLeavesTheAllowedDirectory) {
  fs::create_symlink(root_ + "/secret/s.csv", root_ + "/allowed/link.csv");
  EXPECT_TRUE(source_->Check(Url("/allowed/link.csv"), "").status().IsInvalid());
}

TEST_F(ArtifactSourceTest, NothingIsAllowedByDefault) {
  ASSERT_OK_AND_ASSIGN(auto none, ArtifactSource::Make(ArtifactSourceOptions{}));
  auto checked = none->Check(Url("/allowed/t.csv"), "");
  EXPECT_TRUE(checked.status().IsInvalid());
  EXPECT_NE(checked.status().message().find("none configured"), std::string::npos);
}

TEST_F(ArtifactSourceTest, FormatComesFromTheExtensionOrTheRequest) {
  ASSERT_OK_AND_ASSIGN(auto guessed, source_->Check(Url("/allowed/sub/x.parquet"), ""));
  EXPECT_EQ(guessed.format, ArtifactFormat::kParquet);
  ASSERT_OK_AND_ASSIGN(auto named, source_->Check(Url("/allowed/sub/x.data"), "json"));
  EXPECT_EQ(named.format, ArtifactFormat::kJson);
  EXPECT_TRUE(source_->Check(Url("/allowed/sub/x.data"), "").status().IsInvalid());
  EXPECT_TRUE(source_->Check(Url("/allowed/t.csv"), "xls").status().IsInvalid());
}

TEST_F(ArtifactSourceTest, MissingFileIsKeyErrorNamingTheUrl) {
  auto fetched = Fetch(Url("/allowed/none.csv"));
  ASSERT_TRUE(fetched.status().IsKeyError()) << fetched.status();
  EXPECT_NE(fetched.status().message().find(Url("/allowed/none.csv")), std::string::npos);
  EXPECT_EQ(source_->stats().failures, 1);
}

TEST_F(ArtifactSourceTest, CorruptFileIsInvalidNamingTheUrlAndFormat) {
  auto fetched = Fetch(Url("/allowed/bad.feather"));
  ASSERT_TRUE(fetched.status().IsInvalid()) << fetched.status();
  EXPECT_NE(fetched.status().message().find(Url("/allowed/bad.feather")), std::string::npos);
  EXPECT_NE(fetched.status().message().find("feather"), std::string::npos);
}

// The reviewer's scenario: the URL names a regular file when the request is checked, and a
// symlink to a secret outside the allowed directory by the time the worker opens it.
TEST_F(ArtifactSourceTest, AFileSwappedForASymlinkAfterItsCheckIsNotRead) {
  Write("/allowed/swap.csv", "id\n1\n");
  ASSERT_OK_AND_ASSIGN(auto target, source_->Check(Url("/allowed/swap.csv"), ""));
  fs::remove(root_ + "/allowed/swap.csv");
  fs::create_symlink(root_ + "/secret/s.csv", root_ + "/allowed/swap.csv");
  auto stream = source_->Execute(target.canonical, nullptr);
  ASSERT_TRUE(stream.status().IsInvalid()) << stream.status();
  EXPECT_NE(stream.status().message().find(Url("/allowed/swap.csv")), std::string::npos);
  EXPECT_NE(stream.status().message().find("symbolic link"), std::string::npos);
}

// O_NOFOLLOW guards only the last component; a directory of the path swapped for a symlink
// is caught by comparing the opened file's path with the checked one.
TEST_F(ArtifactSourceTest, ADirectorySwappedForASymlinkAfterTheCheckIsNotRead) {
  fs::create_directories(root_ + "/allowed/dir");
  Write("/allowed/dir/s.csv", "id\n1\n");
  ASSERT_OK_AND_ASSIGN(auto target, source_->Check(Url("/allowed/dir/s.csv"), ""));
  fs::rename(root_ + "/allowed/dir", root_ + "/allowed/dir.old");
  fs::create_directory_symlink(root_ + "/secret", root_ + "/allowed/dir");
  auto stream = source_->Execute(target.canonical, nullptr);
  ASSERT_TRUE(stream.status().IsInvalid()) << stream.status();
  EXPECT_NE(stream.status().message().find("another file than the one that was checked"),
            std::string::npos)
      << stream.status();
}

TEST_F(ArtifactSourceTest, ASymlinkWithinTheAllowedDirectoryIsReadAsItsTarget) {
  fs::create_symlink(root_ + "/allowed/t.csv", root_ + "/allowed/alias.csv");
  ASSERT_OK_AND_ASSIGN(auto table, Fetch(Url("/allowed/alias.csv")));
  EXPECT_EQ(table->num_rows(), 2);
}

// A pipe would block the worker in open() (no writer) or read() forever: refused at once,
// and the single worker is free for the next fetch.
TEST_F(ArtifactSourceTest, APipeIsRefusedWithoutBlockingTheWorker) {
  ASSERT_EQ(::mkfifo((root_ + "/allowed/pipe.csv").c_str(), 0600), 0);
  auto fetched = Fetch(Url("/allowed/pipe.csv"));
  ASSERT_TRUE(fetched.status().IsInvalid()) << fetched.status();
  EXPECT_NE(fetched.status().message().find(Url("/allowed/pipe.csv")), std::string::npos);
  EXPECT_NE(fetched.status().message().find("not a regular file"), std::string::npos);
  ASSERT_OK_AND_ASSIGN(auto table, Fetch(Url("/allowed/t.csv")));
  EXPECT_EQ(table->num_rows(), 2);
}

TEST_F(ArtifactSourceTest, ADirectoryIsRefused) {
  auto fetched = Fetch(Url("/allowed/sub"), "csv");
  ASSERT_TRUE(fetched.status().IsInvalid()) << fetched.status();
  EXPECT_NE(fetched.status().message().find("directory"), std::string::npos);
}

// The data is counted as it is read (its IPC size), and the fetch stops once it passes
// max_bytes: a file whose data would not fit is refused as too large, not decoded whole.
TEST_F(ArtifactSourceTest, DataPastMaxBytesIsRefusedAsTooLarge) {
  std::string csv = "v\n";
  for (int i = 0; i < 20000; ++i) csv += "1\n";  // 40 kB of text, 160 kB as int64
  Write("/allowed/big.csv", csv);
  ArtifactSourceOptions options;
  options.allowed_prefixes = {"file://" + root_ + "/allowed/"};
  options.max_bytes = 100000;
  ASSERT_OK_AND_ASSIGN(source_, ArtifactSource::Make(options));
  auto fetched = Fetch(Url("/allowed/big.csv"));
  ASSERT_TRUE(fetched.status().IsCapacityError()) << fetched.status();
  auto rejection = RejectionOf(fetched.status());
  ASSERT_NE(rejection, nullptr);
  EXPECT_EQ(rejection->kind(), RejectionKind::kTooLarge);
  EXPECT_EQ(rejection->setting(), "max_entry_bytes");
  EXPECT_EQ(rejection->limit(), 100000);
  EXPECT_NE(fetched.status().message().find("its data passed"), std::string::npos);
  EXPECT_NE(fetched.status().message().find(Url("/allowed/big.csv")), std::string::npos);
  ASSERT_OK_AND_ASSIGN(auto small, Fetch(Url("/allowed/t.csv")));  // within the limit
  EXPECT_EQ(small->num_rows(), 2);
}

TEST_F(ArtifactSourceTest, AFileLargerThanMaxBytesIsRefusedBeforeItIsRead) {
  ArtifactSourceOptions options;
  options.allowed_prefixes = {"file://" + root_ + "/allowed/"};
  options.max_bytes = 10;
  ASSERT_OK_AND_ASSIGN(source_, ArtifactSource::Make(options));
  auto fetched = Fetch(Url("/allowed/bad.feather"));  // unreadable: it must not be read
  ASSERT_TRUE(fetched.status().IsCapacityError()) << fetched.status();
  ASSERT_NE(RejectionOf(fetched.status()), nullptr);
  EXPECT_NE(fetched.status().message().find("the file is"), std::string::npos);
}

}  // namespace
}  // namespace quiver
