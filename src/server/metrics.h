// Metrics: what Quiver exports on /metrics, in the Prometheus text exposition format 0.0.4.
//
// Two kinds of series. Events only the servers see -- requests on both interfaces, their
// latency, errors by code, bytes served, query executions on the sources -- are counted here
// as they end (ObserveRequest, the Execution* calls). Everything the engine already counts
// (hits and misses, evictions, invalidations, fills, bytes stored, budget use per tier) is
// read from the engine at scrape time (Render), so /metrics and the `stats` action never
// disagree. The names, labels and meanings are listed in docs/observability.md.
//
// The series are kept by prometheus-cpp's core library (Debian's libprometheus-cpp-core):
// lock-free counters, fixed-bucket histograms and its text serializer (escaping, `+Inf`,
// `_bucket`/`_sum`/`_count`). Label values come from a small set Quiver chooses (request
// kinds, gRPC or HTTP codes, source names), never from keys or other client-chosen text.
//
// Thread-safety: all methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace quiver {

class Engine;

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  /// \brief Count one finished request.
  ///
  /// `interface`: "flight" or "http". `kind`: what was asked, e.g. "DoGet:object",
  /// "DoAction:stats", "GET /v1/objects". `outcome`: "hit", "miss", "join", "bypass",
  /// "not_modified", "ok" or "error". `code`: the gRPC status name ("OK", "NOT_FOUND") or
  /// the HTTP status ("200", "404"); a request whose outcome is "error" is also counted in
  /// quiver_request_errors_total under this code. `bytes_out`: bytes sent to the client.
  void ObserveRequest(std::string_view interface, std::string_view kind,
                      std::string_view outcome, std::string_view code, double seconds,
                      int64_t bytes_out);

  /// \brief A query execution on `source` started (it holds one of the source's slots, or
  /// waits for one).
  void ExecutionStarted(std::string_view source);
  /// \brief That execution ended after `seconds`: its stream reached the end ("ok"), failed
  /// ("error") or was dropped before its end ("cancelled").
  void ExecutionEnded(std::string_view source, std::string_view outcome, double seconds);

  /// \brief Every series, as a Prometheus text exposition (content type
  /// "text/plain; version=0.0.4"). `engine` may be null (not open yet): then only the
  /// request series are shown.
  std::string Render(Engine* engine) const;

  /// The content type of Render()'s text.
  static constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  struct Series;
  std::unique_ptr<Series> series_;
};

/// \brief A new request id: 32 random hex digits.
std::string NewRequestId();

/// \brief An incoming request id worth keeping: 1 to 128 characters of letters, digits and
/// `-_.:/+=`. Anything else (too long, spaces, quotes, control characters) is replaced by a
/// new id, so that ids are safe to log and to send back as a header.
bool IsSaneRequestId(std::string_view id);

}  // namespace quiver
