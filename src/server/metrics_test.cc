#include "server/metrics.h"

#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "exec/adbc_source.h"
#include "server/http_observation.h"
#include "server/timed_source.h"

namespace quiver {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST(Metrics, RequestsAreCountedByInterfaceKindAndOutcome) {
  Metrics m;
  m.ObserveRequest("flight", "DoGet:object", "hit", "OK", 0.002, 100);
  m.ObserveRequest("flight", "DoGet:object", "hit", "OK", 0.003, 50);
  m.ObserveRequest("flight", "DoGet:object", "error", "NOT_FOUND", 0.001, 0);
  m.ObserveRequest("http", "GET /v1/objects", "ok", "200", 0.5, 7);
  const std::string text = m.Render(nullptr);
  EXPECT_TRUE(Has(text, "# HELP quiver_requests_total ")) << text;
  EXPECT_TRUE(Has(text, "# TYPE quiver_requests_total counter\n")) << text;
  EXPECT_TRUE(Has(text,
                  "quiver_requests_total{interface=\"flight\",kind=\"DoGet:object\","
                  "outcome=\"hit\"} 2\n"))
      << text;
  EXPECT_TRUE(Has(text,
                  "quiver_request_errors_total{code=\"NOT_FOUND\",interface=\"flight\","
                  "kind=\"DoGet:object\"} 1\n"))
      << text;
  // Only errors are errors.
  EXPECT_FALSE(Has(text, "quiver_request_errors_total{code=\"OK\"")) << text;
  EXPECT_FALSE(Has(text, "code=\"200\"")) << text;
  EXPECT_TRUE(
      Has(text, "quiver_served_bytes_total{interface=\"flight\",kind=\"DoGet:object\"} 150\n"))
      << text;
  EXPECT_TRUE(
      Has(text, "quiver_served_bytes_total{interface=\"http\",kind=\"GET /v1/objects\"} 7\n"))
      << text;
}

TEST(Metrics, LatencyIsAHistogramWithCumulativeBuckets) {
  Metrics m;
  m.ObserveRequest("flight", "DoPut:object", "ok", "OK", 0.0007, 0);  // <= 0.001
  m.ObserveRequest("flight", "DoPut:object", "ok", "OK", 0.2, 0);     // <= 0.25
  m.ObserveRequest("flight", "DoPut:object", "ok", "OK", 100, 0);     // above every bound
  const std::string text = m.Render(nullptr);
  const std::string name = "quiver_request_duration_seconds";
  const std::string labels = "interface=\"flight\",kind=\"DoPut:object\"";
  EXPECT_TRUE(Has(text, "# TYPE " + name + " histogram\n")) << text;
  EXPECT_TRUE(Has(text, name + "_bucket{" + labels + ",le=\"0.0005\"} 0\n")) << text;
  EXPECT_TRUE(Has(text, name + "_bucket{" + labels + ",le=\"0.001\"} 1\n")) << text;
  EXPECT_TRUE(Has(text, name + "_bucket{" + labels + ",le=\"0.25\"} 2\n")) << text;
  EXPECT_TRUE(Has(text, name + "_bucket{" + labels + ",le=\"60\"} 2\n")) << text;
  EXPECT_TRUE(Has(text, name + "_bucket{" + labels + ",le=\"+Inf\"} 3\n")) << text;
  EXPECT_TRUE(Has(text, name + "_count{" + labels + "} 3\n")) << text;
  EXPECT_TRUE(Has(text, name + "_sum{" + labels + "} 100.2007\n")) << text;
}

TEST(Metrics, LabelValuesAreEscaped) {
  Metrics m;
  m.ObserveRequest("http", "a\"b\\c\nd", "ok", "200", 0.1, 0);
  const std::string text = m.Render(nullptr);
  EXPECT_TRUE(Has(text, "kind=\"a\\\"b\\\\c\\nd\"")) << text;
}

TEST(Metrics, ConcurrentObservationsAreAllCounted) {
  Metrics m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&m] {
      for (int i = 0; i < 1000; ++i) {
        m.ObserveRequest("flight", "DoGet:query", "miss", "OK", 0.01, 1);
      }
    });
  }
  for (auto& t : threads) t.join();
  const std::string text = m.Render(nullptr);
  EXPECT_TRUE(Has(text,
                  "quiver_requests_total{interface=\"flight\",kind=\"DoGet:query\","
                  "outcome=\"miss\"} 8000\n"))
      << text;
}

TEST(Metrics, ExecutionsOnARealSourceAreTimedAndCounted) {
  SourceSpec spec;
  spec.name = "lite";
  spec.driver = "sqlite";
  spec.uri = ":memory:";
  auto opened = OpenAdbcSource(spec);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Metrics m;
  auto source = WithExecutionMetrics(*opened, &m);
  EXPECT_EQ(source->spec().name, "lite");

  auto stream = source->Execute("SELECT 1 AS x", nullptr);
  ASSERT_TRUE(stream.ok()) << stream.status();
  EXPECT_TRUE(Has(m.Render(nullptr), "quiver_query_executions_running{source=\"lite\"} 1\n"));
  while (true) {
    auto batch = (*stream)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status();
    if (!*batch) break;
  }
  stream->reset();
  std::string text = m.Render(nullptr);
  EXPECT_TRUE(Has(text, "quiver_query_executions_running{source=\"lite\"} 0\n")) << text;
  EXPECT_TRUE(Has(text,
                  "quiver_query_execution_seconds_count{outcome=\"ok\",source=\"lite\"} 1\n"))
      << text;

  // A query the database refuses is an execution that failed.
  auto bad = source->Execute("SELECT * FROM no_such_table", nullptr);
  if (bad.ok()) {
    while (true) {
      auto batch = (*bad)->Next();
      if (!batch.ok() || !*batch) break;
    }
    bad->reset();
  }
  text = m.Render(nullptr);
  EXPECT_TRUE(Has(text,
                  "quiver_query_execution_seconds_count{outcome=\"error\",source=\"lite\"} 1\n"))
      << text;
  EXPECT_TRUE(Has(text, "quiver_query_executions_running{source=\"lite\"} 0\n")) << text;

  // Dropped before its end: cancelled.
  auto dropped = source->Execute("SELECT 1 AS x", nullptr);
  ASSERT_TRUE(dropped.ok());
  dropped->reset();
  text = m.Render(nullptr);
  EXPECT_TRUE(Has(text,
                  "quiver_query_execution_seconds_count{outcome=\"cancelled\",source=\"lite\"} "
                  "1\n"))
      << text;
}

TEST(HttpObservation, KindsAreRoutesNotPaths) {
  auto get = ObserveHttp({"GET", "/v1/objects/s/o", 200, "", "", ""});
  EXPECT_EQ(get.kind, "GET /v1/objects");
  EXPECT_EQ(get.key, "s/o");
  EXPECT_EQ(get.outcome, "hit");
  EXPECT_EQ(get.code, "200");
  EXPECT_EQ(ObserveHttp({"GET", "/v1/objects/s/o", 304, "", "", ""}).outcome, "not_modified");
  EXPECT_EQ(ObserveHttp({"GET", "/v1/objects/s/x", 404, "", "", ""}).outcome, "error");
  EXPECT_EQ(ObserveHttp({"PUT", "/v1/objects/s/o", 201, "", "", ""}).outcome, "ok");
  auto miss = ObserveHttp({"POST", "/v1/query", 200, "miss", "true", "@q/ab"});
  EXPECT_EQ(miss.kind, "POST /v1/query");
  EXPECT_EQ(miss.outcome, "join");
  EXPECT_EQ(miss.key, "@q/ab");
  EXPECT_EQ(ObserveHttp({"POST", "/v1/query", 200, "hit", "", ""}).outcome, "hit");
  EXPECT_EQ(ObserveHttp({"POST", "/v1/actions/invalidate", 200, "", "", ""}).kind,
            "POST /v1/actions/invalidate");
  EXPECT_EQ(ObserveHttp({"POST", "/v1/actions/made-up", 404, "", "", ""}).kind,
            "POST /v1/actions/unknown");
  EXPECT_EQ(ObserveHttp({"GET", "/no/such/path", 404, "", "", ""}).kind, "GET other");
  EXPECT_EQ(ObserveHttp({"BREW", "/metrics", 405, "", "", ""}).kind, "OTHER /metrics");
}

TEST(RequestId, NewIdsAreHexAndDistinct) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    auto id = NewRequestId();
    ASSERT_EQ(id.size(), 32u);
    ASSERT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
  EXPECT_TRUE(IsSaneRequestId(NewRequestId()));
}

TEST(RequestId, OnlySaneIncomingIdsAreKept) {
  EXPECT_TRUE(IsSaneRequestId("abc-123_x.y:z"));
  EXPECT_TRUE(IsSaneRequestId("f0e1d2c3-b4a5-4678-9abc-def012345678"));
  EXPECT_FALSE(IsSaneRequestId(""));
  EXPECT_FALSE(IsSaneRequestId(std::string(129, 'a')));
  EXPECT_TRUE(IsSaneRequestId(std::string(128, 'a')));
  EXPECT_FALSE(IsSaneRequestId("has space"));
  EXPECT_FALSE(IsSaneRequestId("quote\""));
  EXPECT_FALSE(IsSaneRequestId("line\nbreak"));
  EXPECT_FALSE(IsSaneRequestId("{\"json\":1}"));
}

}  // namespace
}  // namespace quiver
