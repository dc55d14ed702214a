#include "server/request_log.h"

#include <chrono>
#include <cmath>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/formatter.h>
#include <spdlog/spdlog.h>

#include "server/audit_log.h"

namespace quiver {

using nlohmann::json;

namespace {

// Request lines go through this logger: the JSON formatter knows its lines by its name.
constexpr const char* kRequestLogger = "request";

// Log text may hold anything (a key, a driver's message): invalid UTF-8 is replaced rather
// than thrown on.
std::string Dump(const json& j) {
  return j.dump(-1, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
}

// Every line one JSON object: {"ts", "level", "msg"}; a request line (a JSON object
// RequestLog wrote) gets "ts" and "level" in front of its own fields.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    const auto level = spdlog::level::to_string_view(msg.level);
    std::string head = fmt::format(R"({{"ts":"{}","level":"{}",)", IsoTime(msg.time),
                                   std::string_view(level.data(), level.size()));
    std::string line;
    const std::string_view logger(msg.logger_name.data(), msg.logger_name.size());
    if (logger == kRequestLogger && payload.size() > 2 && payload.front() == '{') {
      line = head + std::string(payload.substr(1));
    } else {
      line = head + R"("msg":)" + Dump(json(std::string(payload))) + "}";
    }
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

std::string IsoTime(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     static_cast<int>(ms.count() % 1000));
}

arrow::Result<LogFormat> ParseLogFormat(std::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return arrow::Status::Invalid("log_format '", name, "' is not text or json");
}

void InstallLogFormat(LogFormat format) {
  if (format == LogFormat::kJson) {
    // Sets it on every sink of every registered logger; the request logger shares them.
    spdlog::set_formatter(std::make_unique<JsonFormatter>());
  }
}

RequestLog::RequestLog(LogFormat format) : format_(format) {
  auto base = spdlog::default_logger();
  logger_ = std::make_shared<spdlog::logger>(kRequestLogger, base->sinks().begin(),
                                             base->sinks().end());
  logger_->set_level(base->level());
}

void RequestLog::Write(const RequestRecord& r) const {
  if (audit_ && r.audited) audit_->Write(r);
  if (format_ == LogFormat::kText) {
    if (!logger_->should_log(spdlog::level::debug)) return;
    logger_->debug("request {} {} {}{}{} {} {} {:.3f} ms {} bytes{}{}", r.request_id, r.interface,
                   r.kind, r.key.empty() ? "" : " ", r.key, r.code, r.outcome, r.duration_ms,
                   r.bytes, r.message.empty() ? "" : ": ", r.message);
    return;
  }
  if (!logger_->should_log(spdlog::level::info)) return;
  json j = {{"msg", "request"},         {"request_id", r.request_id}, {"interface", r.interface},
            {"kind", r.kind},           {"code", r.code},             {"outcome", r.outcome},
            {"duration_ms", std::round(r.duration_ms * 1000) / 1000}, {"bytes", r.bytes}};
  if (!r.key.empty()) j["key"] = r.key;
  if (!r.message.empty()) j["error"] = r.message;
  if (!r.peer.empty()) j["peer"] = r.peer;
  if (!r.identity.empty()) j["identity"] = r.identity;
  if (!r.tenant.empty()) j["tenant"] = r.tenant;
  logger_->info("{}", Dump(j));
}

}  // namespace quiver
