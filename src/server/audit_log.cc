#include "server/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "server/actions.h"
#include "server/request_log.h"

namespace quiver {

namespace {

std::string NowIso() {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::system_clock::now().time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     static_cast<int>(ms.count() % 1000));
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

bool IsAuditedKind(std::string_view kind) {
  if (StartsWith(kind, "DoPut") || kind == "PUT /v1/objects" || kind == "DELETE /v1/objects") {
    return true;
  }
  for (std::string_view prefix : {"DoAction:", "POST /v1/actions/"}) {
    if (StartsWith(kind, prefix)) {
      return ActionRole(std::string(kind.substr(prefix.size()))) != Role::kReader;
    }
  }
  return false;
}

arrow::Result<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return arrow::Status::IOError("cannot open audit log '", path, "' (auth.audit_log): ",
                                  std::strerror(errno));
  }
  return std::unique_ptr<AuditLog>(new AuditLog(path, fd));
}

AuditLog::~AuditLog() { ::close(fd_); }

void AuditLog::Write(const RequestRecord& r) const {
  nlohmann::json j = {{"ts", NowIso()},        {"request_id", r.request_id},
                      {"interface", r.interface}, {"identity", r.identity},
                      {"tenant", r.tenant},    {"kind", r.kind},
                      {"code", r.code},        {"outcome", r.outcome}};
  if (!r.key.empty()) j["key"] = r.key;
  if (!r.peer.empty()) j["peer"] = r.peer;
  if (!r.message.empty()) j["error"] = r.message;
  const std::string line =
      j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true)) {
      spdlog::error("audit log '{}': cannot append ({}); audit lines are being lost", path_,
                    std::strerror(errno));
    }
  }
}

}  // namespace quiver
