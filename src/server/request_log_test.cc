#include "server/request_log.h"

#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

namespace quiver {
namespace {

using nlohmann::json;

// Routes the default logger to a string for one test, and restores it after.
class CapturedLog : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = spdlog::default_logger();
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    auto logger = std::make_shared<spdlog::logger>("quiver", sink);
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("%l %v");
  }
  void TearDown() override { spdlog::set_default_logger(saved_); }

  std::vector<std::string> Lines() {
    std::vector<std::string> lines;
    std::istringstream in(out_.str());
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> saved_;
};

RequestRecord Sample() {
  RequestRecord r;
  r.request_id = "abc123";
  r.interface = "flight";
  r.kind = "DoGet:object";
  r.key = "s/o";
  r.code = "NOT_FOUND";
  r.outcome = "error";
  r.message = "no object 's/o'";
  r.peer = "ipv4:127.0.0.1:5000";
  r.duration_ms = 1.23456;
  r.bytes = 42;
  return r;
}

TEST(LogFormat, IsTextOrJson) {
  EXPECT_EQ(*ParseLogFormat("text"), LogFormat::kText);
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  auto bad = ParseLogFormat("yaml");
  ASSERT_TRUE(bad.status().IsInvalid());
  EXPECT_NE(bad.status().message().find("'yaml'"), std::string::npos);
}

TEST_F(CapturedLog, JsonFormatMakesEveryLineAJsonObject) {
  InstallLogFormat(LogFormat::kJson);
  RequestLog log(LogFormat::kJson);
  spdlog::info("put {}: \"quoted\", tab\there, invalid utf-8 \xff", "s/o");
  spdlog::warn("second line");
  log.Write(Sample());
  auto lines = Lines();
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  std::vector<json> parsed;
  for (const auto& line : lines) {
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(j.is_object()) << line;
    ASSERT_TRUE(j["ts"].is_string()) << line;
    EXPECT_EQ(j["ts"].get<std::string>().size(), 24u) << line;  // 2026-11-30T08:06:47.123Z
    parsed.push_back(j);
  }
  EXPECT_EQ(parsed[0]["level"], "info");
  EXPECT_EQ(parsed[0]["msg"].get<std::string>().rfind("put s/o: \"quoted\", tab\there", 0), 0u);
  EXPECT_EQ(parsed[1]["level"], "warning");
  const json& r = parsed[2];
  EXPECT_EQ(r["level"], "info");
  EXPECT_EQ(r["msg"], "request");
  EXPECT_EQ(r["request_id"], "abc123");
  EXPECT_EQ(r["interface"], "flight");
  EXPECT_EQ(r["kind"], "DoGet:object");
  EXPECT_EQ(r["key"], "s/o");
  EXPECT_EQ(r["code"], "NOT_FOUND");
  EXPECT_EQ(r["outcome"], "error");
  EXPECT_EQ(r["error"], "no object 's/o'");
  EXPECT_EQ(r["peer"], "ipv4:127.0.0.1:5000");
  EXPECT_DOUBLE_EQ(r["duration_ms"].get<double>(), 1.235);
  EXPECT_EQ(r["bytes"], 42);
}

TEST_F(CapturedLog, TextFormatWritesARequestAsOneDebugLine) {
  RequestLog log(LogFormat::kText);
  log.Write(Sample());
  auto lines = Lines();
  ASSERT_EQ(lines.size(), 1u) << out_.str();
  EXPECT_EQ(lines[0],
            "debug request abc123 flight DoGet:object s/o NOT_FOUND error 1.235 ms 42 bytes: "
            "no object 's/o'");
}

}  // namespace
}  // namespace quiver
