// AdbcSource: a Source on an ADBC driver (SQLite, PostgreSQL, ...).
//
// Loads the driver library directly (dlopen + its AdbcDriverInit entrypoint, ADBC 1.1 with
// a 1.0 fallback), opens one AdbcDatabase, and keeps a pool of up to max_concurrent
// connections. Results come back as an ArrowArrayStream imported with
// arrow::ImportRecordBatchReader. Parameters are bound with AdbcStatementBind, never
// pasted into the SQL.
//
// Thread-safety: see Source.
#pragma once

#include <memory>

#include "exec/source.h"

namespace quiver {

/// \brief Resolve a driver name ("sqlite", "postgresql") or path to a library path.
/// Names resolve to the drivers found at build time in the project virtualenv
/// (overridable with QUIVER_ADBC_DRIVER_DIR).
arrow::Result<std::string> ResolveAdbcDriver(const std::string& driver);

/// \brief Open a source; connects once to fail early on a bad URI.
arrow::Result<std::shared_ptr<Source>> OpenAdbcSource(const SourceSpec& spec);

}  // namespace quiver
