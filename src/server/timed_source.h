// TimedSource: a Source decorator that reports each query execution to Metrics -- how many
// run now per source, and how long each took from the request for a slot to the end of its
// stream (quiver_query_execution_seconds).
//
// It wraps the sources the server opens, so the engine is not told about metrics: every
// execution the engine starts, for a miss or a bypass, on either interface, passes through
// here.
//
// Thread-safety: as the wrapped Source (Execute may be called concurrently; a stream belongs
// to one thread, except Cancel()).
#pragma once

#include <memory>

#include "exec/source.h"
#include "server/metrics.h"

namespace quiver {

/// \brief `source`, reporting its executions to `metrics` (which must outlive it).
std::shared_ptr<Source> WithExecutionMetrics(std::shared_ptr<Source> source, Metrics* metrics);

}  // namespace quiver
