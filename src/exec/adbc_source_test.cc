// AdbcSource against the real SQLite ADBC driver on a temporary database file.
#include "exec/adbc_source.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include <arrow/api.h>

#include "common/testing.h"

namespace quiver {
namespace {

class AdbcSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quiver-adbc-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    spec_.name = "lite";
    spec_.driver = "sqlite";
    spec_.uri = dir_ + "/t.db";
    auto source = OpenAdbcSource(spec_);
    ASSERT_TRUE(source.ok()) << source.status();
    source_ = *source;
    Exec("CREATE TABLE t (id INTEGER, name TEXT)");
    Exec("INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')");
  }
  void TearDown() override {
    source_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::shared_ptr<arrow::Table> Exec(const std::string& sql,
                                     std::shared_ptr<arrow::RecordBatch> params = nullptr) {
    auto stream = source_->Execute(sql, params);
    EXPECT_TRUE(stream.ok()) << stream.status();
    if (!stream.ok()) return nullptr;
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
    while (true) {
      auto batch = (*stream)->Next();
      EXPECT_TRUE(batch.ok()) << batch.status();
      if (!batch.ok() || !*batch) break;
      batches.push_back(*batch);
    }
    return *arrow::Table::FromRecordBatches((*stream)->schema(), batches);
  }

  std::string dir_;
  SourceSpec spec_;
  std::shared_ptr<Source> source_;
};

TEST_F(AdbcSourceTest, RunsQueriesAndBindsParameters) {
  EXPECT_EQ(source_->dialect(), SqlDialect::kSqlite);
  auto all = Exec("SELECT id, name FROM t ORDER BY id");
  ASSERT_NE(all, nullptr);
  EXPECT_EQ(all->num_rows(), 3);

  arrow::Int64Builder b;
  ASSERT_OK(b.Append(2));
  auto params = arrow::RecordBatch::Make(arrow::schema({arrow::field("0", arrow::int64())}), 1,
                                         {*b.Finish()});
  auto one = Exec("SELECT name FROM t WHERE id = ?", params);
  ASSERT_NE(one, nullptr);
  ASSERT_EQ(one->num_rows(), 1);
  auto names = std::static_pointer_cast<arrow::StringArray>(one->column(0)->chunk(0));
  EXPECT_EQ(names->GetString(0), "two");

  // A parameter is data, never SQL: an injection attempt matches nothing.
  arrow::StringBuilder sb;
  ASSERT_OK(sb.Append("1 OR 1=1"));
  auto evil = arrow::RecordBatch::Make(arrow::schema({arrow::field("0", arrow::utf8())}), 1,
                                       {*sb.Finish()});
  EXPECT_EQ(Exec("SELECT name FROM t WHERE id = ?", evil)->num_rows(), 0);
}

TEST_F(AdbcSourceTest, ErrorsNameTheSource) {
  auto bad = source_->Execute("SELEC oops", nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("source 'lite'"), std::string::npos) << bad.status();
  // The connection went back to the pool: the source still works.
  EXPECT_EQ(Exec("SELECT 1 AS x")->num_rows(), 1);
}

TEST_F(AdbcSourceTest, QueueBoundRefusesWithCapacityError) {
  SourceSpec spec = spec_;
  spec.max_concurrent = 1;
  spec.max_queue = 0;
  ASSERT_OK_AND_ASSIGN(auto source, OpenAdbcSource(spec));
  ASSERT_OK_AND_ASSIGN(auto running, source->Execute("SELECT id FROM t", nullptr));
  auto refused = source->Execute("SELECT id FROM t", nullptr);
  ASSERT_TRUE(refused.status().IsCapacityError()) << refused.status();
  EXPECT_NE(refused.status().message().find("resource exhausted"), std::string::npos);
  running.reset();  // frees the slot
  EXPECT_TRUE(source->Execute("SELECT id FROM t", nullptr).ok());
}

TEST_F(AdbcSourceTest, WaitersGetTheSlotWhenItFrees) {
  SourceSpec spec = spec_;
  spec.max_concurrent = 1;
  spec.max_queue = 4;
  ASSERT_OK_AND_ASSIGN(auto source, OpenAdbcSource(spec));
  ASSERT_OK_AND_ASSIGN(auto running, source->Execute("SELECT id FROM t", nullptr));
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    auto s = source->Execute("SELECT id FROM t", nullptr);
    EXPECT_TRUE(s.ok()) << s.status();
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(done.load()) << "a second execution ran beyond max_concurrent";
  running.reset();
  waiter.join();
  EXPECT_TRUE(done.load());
}

TEST(SourceFlag, ParsesSchemes) {
  ASSERT_OK_AND_ASSIGN(auto lite, ParseSourceFlag("demo=sqlite:///data/demo.db"));
  EXPECT_EQ(lite.name, "demo");
  EXPECT_EQ(lite.driver, "sqlite");
  EXPECT_EQ(lite.uri, "/data/demo.db");
  ASSERT_OK_AND_ASSIGN(auto pg, ParseSourceFlag("pg=postgresql://u@127.0.0.1:5432/db"));
  EXPECT_EQ(pg.driver, "postgresql");
  EXPECT_EQ(pg.uri, "postgresql://u@127.0.0.1:5432/db");
  EXPECT_FALSE(ParseSourceFlag("noequals").ok());
  EXPECT_FALSE(ParseSourceFlag("x=mysql://h/db").ok());
  EXPECT_FALSE(ParseSourceFlag("bad name=sqlite:///x").ok());
}

TEST(AdbcSource, BadDriverAndUriFailEarly) {
  SourceSpec spec;
  spec.name = "x";
  spec.driver = "oracle";
  spec.uri = "whatever";
  EXPECT_TRUE(OpenAdbcSource(spec).status().IsInvalid());
  spec.driver = "/nonexistent/libdriver.so";
  auto r = OpenAdbcSource(spec);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/libdriver.so"), std::string::npos);
}

}  // namespace
}  // namespace quiver
