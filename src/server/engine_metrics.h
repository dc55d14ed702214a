// Engine metrics: the engine's own statistics (the `stats` action's numbers) as Prometheus
// metric families, read at scrape time.
//
// Internal to Metrics::Render (metrics.cc); the families are documented in
// docs/observability.md.
//
// Thread-safety: as the engine's Stats() calls, which are safe to call concurrently.
#pragma once

#include <vector>

#include <prometheus/metric_family.h>

namespace quiver {

class Engine;

/// \brief Append the engine's counters and gauges to `out`. If the engine cannot report its
/// statistics (the index is unavailable), only quiver_stats_up 0 and what needs no index are
/// appended.
void AppendEngineFamilies(Engine* engine, std::vector<prometheus::MetricFamily>* out);

}  // namespace quiver
