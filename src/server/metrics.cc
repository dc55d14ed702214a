#include "server/metrics.h"

#include <random>
#include <sstream>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "server/engine_metrics.h"

namespace quiver {

namespace {

// Request latencies: a memory hit is well under a millisecond, a fill or a large object
// takes seconds.
const prometheus::Histogram::BucketBoundaries kRequestBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
// Query executions: from a millisecond (SQLite on a small table) to minutes.
const prometheus::Histogram::BucketBoundaries kExecutionBuckets = {
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};

std::string Str(std::string_view s) { return std::string(s); }

}  // namespace

struct Metrics::Series {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter()
          .Name("quiver_requests_total")
          .Help("Requests that ended, by interface (flight, http), kind and outcome")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& latency =
      prometheus::BuildHistogram()
          .Name("quiver_request_duration_seconds")
          .Help("Time from a request's start to its last byte, by interface and kind")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& errors =
      prometheus::BuildCounter()
          .Name("quiver_request_errors_total")
          .Help("Requests that ended in an error, by interface, kind and code (gRPC status "
                "name or HTTP status)")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& served =
      prometheus::BuildCounter()
          .Name("quiver_served_bytes_total")
          .Help("Bytes sent to clients (Arrow IPC messages and bodies), by interface and kind")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& executions =
      prometheus::BuildHistogram()
          .Name("quiver_query_execution_seconds")
          .Help("Query executions on a source, from the request for a slot to the end of the "
                "source's stream, by source and outcome (ok, error, cancelled)")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& running =
      prometheus::BuildGauge()
          .Name("quiver_query_executions_running")
          .Help("Query executions on a source now (running or waiting for a slot): the fills "
                "running on this node, and bypass executions")
          .Register(registry);
};

Metrics::Metrics() : series_(std::make_unique<Series>()) {}
Metrics::~Metrics() = default;

void Metrics::ObserveRequest(std::string_view interface, std::string_view kind,
                             std::string_view outcome, std::string_view code, double seconds,
                             int64_t bytes_out) {
  // Family::Add returns the series of these labels, creating it the first time.
  series_->requests
      .Add({{"interface", Str(interface)}, {"kind", Str(kind)}, {"outcome", Str(outcome)}})
      .Increment();
  series_->latency.Add({{"interface", Str(interface)}, {"kind", Str(kind)}}, kRequestBuckets)
      .Observe(seconds);
  if (outcome == "error") {
    series_->errors.Add({{"interface", Str(interface)}, {"kind", Str(kind)}, {"code", Str(code)}})
        .Increment();
  }
  if (bytes_out > 0) {
    series_->served.Add({{"interface", Str(interface)}, {"kind", Str(kind)}})
        .Increment(static_cast<double>(bytes_out));
  }
}

void Metrics::ExecutionStarted(std::string_view source) {
  series_->running.Add({{"source", Str(source)}}).Increment();
}

void Metrics::ExecutionEnded(std::string_view source, std::string_view outcome, double seconds) {
  series_->running.Add({{"source", Str(source)}}).Decrement();
  series_->executions.Add({{"source", Str(source)}, {"outcome", Str(outcome)}}, kExecutionBuckets)
      .Observe(seconds);
}

std::string Metrics::Render(Engine* engine) const {
  std::vector<prometheus::MetricFamily> families = series_->registry.Collect();
  if (engine) AppendEngineFamilies(engine, &families);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

std::string NewRequestId() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    uint64_t bits = random();
    for (int i = 0; i < 16; ++i, bits >>= 4) id[half * 16 + i] = kHex[bits & 0xf];
  }
  return id;
}

bool IsSaneRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == ':' || c == '/' || c == '+' ||
                    c == '=';
    if (!ok) return false;
  }
  return true;
}

}  // namespace quiver
