// SQL text handling that the query cache needs: normalization for cache keys and
// detection of non-deterministic functions. Purely lexical -- no SQL parser.
//
// NormalizeSql, outside string literals, quoted identifiers and dollar-quoted strings:
//   - removes `-- ...` line comments and `/* ... */` block comments;
//   - collapses every run of whitespace (and comments) into one space;
//   - trims leading and trailing whitespace and trailing semicolons.
// Everything else -- letter case included -- is kept as written, so `SELECT` and `select`
// are different keys. Literals are kept byte for byte.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace quiver {

enum class SqlDialect { kSqlite, kPostgresql, kGeneric };

/// \brief Return the dialect's name ("sqlite", "postgresql", "generic").
const char* DialectName(SqlDialect dialect);

/// \brief Normalize `sql` as described above.
std::string NormalizeSql(std::string_view sql, SqlDialect dialect);

/// \brief If `sql` calls a non-deterministic function of `dialect` (random(), now(),
/// current_timestamp, ...) outside literals and comments, return its name.
std::optional<std::string> FindNondeterministic(std::string_view sql, SqlDialect dialect);

}  // namespace quiver
