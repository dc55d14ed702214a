// RequestLog: one log line per finished request, and the format of every log line.
//
// log_format text: spdlog's usual lines; a request is one debug line. log_format json:
// every line spdlog writes (to stderr) is one JSON object {"ts", "level", "msg", ...}, and a
// request is one info line whose fields (request_id, interface, kind, key, code, outcome,
// duration_ms, bytes, peer) sit beside "ts" and "level", so a log shipper needs no parser of
// its own. The first stdout line ("quiver listening on ...") is not a log line and is kept.
// docs/observability.md describes the fields.
//
// Thread-safety: Write may be called concurrently (spdlog's loggers are thread-safe);
// InstallLogFormat is called once at startup, before the servers run.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <arrow/result.h>

namespace spdlog {
class logger;
}

namespace quiver {

class AuditLog;

enum class LogFormat { kText, kJson };

/// \brief "text" or "json"; Invalid naming the value otherwise.
arrow::Result<LogFormat> ParseLogFormat(std::string_view name);

/// \brief `t` as ISO 8601 UTC with milliseconds, e.g. 2026-11-30T08:06:47.123Z (log lines'
/// "ts").
std::string IsoTime(std::chrono::system_clock::time_point t);

/// \brief Make every logger write in `format` (json: the JSON formatter on every sink of the
/// default logger). Call after the default logger is set up.
void InstallLogFormat(LogFormat format);

/// What one request was and how it ended.
struct RequestRecord {
  std::string request_id;
  std::string interface;  ///< "flight" or "http"
  std::string kind;       ///< e.g. "DoGet:object", "GET /v1/objects"
  std::string key;        ///< the object or query key, if known
  std::string code;       ///< gRPC status name or HTTP status
  std::string outcome;    ///< hit, miss, join, bypass, not_modified, ok, error
  std::string message;    ///< the error's message, if any
  std::string peer;       ///< the client's address
  std::string identity;   ///< who called (the token's name; "anonymous" without auth)
  std::string tenant;     ///< the caller's tenant (empty without auth)
  bool audited = false;   ///< also goes to the audit log (audit_log.h)
  double duration_ms = 0;
  int64_t bytes = 0;  ///< bytes sent to the client
};

class RequestLog {
 public:
  /// Writes through the default logger's sinks. REQUIRES: InstallLogFormat(format) was
  /// called (or format is kText).
  explicit RequestLog(LogFormat format);

  void Write(const RequestRecord& record) const;
  /// \brief Also write the audited records to `audit` (null: none). Call before serving.
  void set_audit(const AuditLog* audit) { audit_ = audit; }

  LogFormat format() const { return format_; }

 private:
  LogFormat format_;
  const AuditLog* audit_ = nullptr;
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace quiver
