// SourceSpec: how one query source is configured (a plain value; exec/ opens it).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
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
  /// Serve a result this long after it expired, at once and marked stale, while one
  /// background refresh runs (RFC 5861 stale-while-revalidate). 0 turns it off. Default: 0.
  double stale_while_revalidate_s = 0;
  /// The largest stale_while_revalidate_s a request may ask for; expired results are kept
  /// this long before they are reclaimed. Empty: stale_while_revalidate_s (requests may
  /// only lower it). Default: empty.
  std::optional<double> max_stale_while_revalidate_s;
  /// XFetch early refresh (policy/early_refresh.h): a hit refreshes the result in the
  /// background with a probability growing as expiry nears and with its recompute cost;
  /// beta scales how early. 0 turns it off. Default: 1.0.
  double early_refresh_beta = 1.0;
  /// With tenants (docs/security.md): the source's data is the same for every tenant, so
  /// its results are cached once for all of them; a tenant's hit is still allowed only if
  /// its token is granted the source (checked on every request). Default: false (results are
  /// cached per tenant).
  bool shared_results = false;
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

namespace quiver {

/// \brief The stale window requests of `spec` may ask for, at most (seconds).
inline double MaxStaleWhileRevalidate(const SourceSpec& spec) {
  return spec.max_stale_while_revalidate_s.value_or(spec.stale_while_revalidate_s);
}

}  // namespace quiver
