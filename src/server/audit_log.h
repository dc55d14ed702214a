// AuditLog: one JSON line per write, delete, invalidation and admin action, accepted or
// refused, appended to its own file (auth.audit_log; docs/security.md "The audit log"):
//
//   {"ts": "2026-11-30T08:06:47.123Z", "request_id": "...", "interface": "flight",
//    "identity": "alice", "tenant": "acme", "kind": "DoAction:invalidate", "key": "...",
//    "code": "OK", "outcome": "ok", "peer": "ipv4:127.0.0.1:53122", "error": "..."}
//
// Each line is one write(2) to a file opened with O_APPEND, so lines from concurrent calls
// never interleave and a crash leaves at most the last line unwritten.
//
// Thread-safety: Write may be called concurrently.
#pragma once

#include <string>
#include <string_view>

#include <arrow/result.h>

namespace quiver {

struct RequestRecord;

class AuditLog {
 public:
  /// \brief Open (create, append to) `path`; the error names it.
  static arrow::Result<std::unique_ptr<AuditLog>> Open(const std::string& path);
  ~AuditLog();

  /// \brief Append `record`'s line (errors are logged once, not thrown: auditing must not
  /// fail the call it records).
  void Write(const RequestRecord& record) const;

 private:
  AuditLog(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  const std::string path_;
  const int fd_;
};

/// \brief True for the kinds the audit log records (a request log kind: "DoPut:object",
/// "DoAction:invalidate", "PUT /v1/objects", "POST /v1/actions/config-set", ...): every
/// put, and every action or route that needs the writer or admin role.
bool IsAuditedKind(std::string_view kind);

}  // namespace quiver
