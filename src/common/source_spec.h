// SourceSpec: how one query source is configured (a plain value; exec/ opens it).
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace quiver {

/// How a source is configured (docs/configuration.md, "sources").
struct SourceSpec {
  std::string name;
  /// "sqlite", "postgresql", or a path to an ADBC driver library.
  std::string driver;
  /// The driver's "uri" option (for sqlite, a SQLite filename or file: URI).
  std::string uri;
  /// Default TTL of this source's cached results, seconds. Default: 300.
  double ttl_s = 300;
  /// Executions running at once. Default: 4.
  int64_t max_concurrent = 4;
  /// Executions waiting for a slot before new ones are refused. Default: 64.
  int64_t max_queue = 64;
  /// Extra driver options, database level (AdbcDatabaseSetOption).
  std::map<std::string, std::string> options;
  /// Extra driver options set on every statement (AdbcStatementSetOption), e.g.
  /// {"adbc.postgresql.batch_size_hint_bytes": "1048576"}.
  std::map<std::string, std::string> statement_options;
};

}  // namespace quiver
