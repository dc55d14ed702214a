// Source: something that runs a query and yields Arrow record batches.
//
// A Source bounds its own concurrency: at most max_concurrent executions run at once,
// at most max_queue more wait for a slot, and further requests fail at once with
// CapacityError ("resource exhausted"). The cache never needs to know which database
// is behind a Source.
//
// Thread-safety: Execute may be called concurrently. A QueryStream belongs to one thread,
// except Cancel(), which any thread may call.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <arrow/record_batch.h>
#include <arrow/result.h>

#include "common/source_spec.h"
#include "exec/sql_text.h"

namespace quiver {

/// A running query. Destroying it releases the database resources it holds.
class QueryStream {
 public:
  virtual ~QueryStream() = default;
  virtual std::shared_ptr<arrow::Schema> schema() const = 0;
  /// \brief Next batch, or nullptr at the end.
  virtual arrow::Result<std::shared_ptr<arrow::RecordBatch>> Next() = 0;
  /// \brief Ask the database to stop the query. Next() then fails or ends early.
  virtual void Cancel() = 0;
};

/// \brief Parse `NAME=URI` (the --source flag); the driver follows the URI's scheme:
/// sqlite:///abs/path.db (or sqlite:relative.db), postgresql://... or postgres://...
arrow::Result<SourceSpec> ParseSourceFlag(const std::string& flag);

class Source {
 public:
  virtual ~Source() = default;
  virtual const SourceSpec& spec() const = 0;
  virtual SqlDialect dialect() const = 0;
  /// \brief Run `sql`, binding `params` (one row; column i binds parameter i+1), if any.
  /// Waits for an execution slot; fails with CapacityError if the queue is full.
  virtual arrow::Result<std::unique_ptr<QueryStream>> Execute(
      const std::string& sql, std::shared_ptr<arrow::RecordBatch> params) = 0;
};

}  // namespace quiver
