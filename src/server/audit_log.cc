#include "server/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "server/actions.h"
#include "server/request_log.h"

namespace quiver {

namespace {

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
  nlohmann::json j = {{"ts", IsoTime(std::chrono::system_clock::now())},        {"request_id", r.request_id},
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
