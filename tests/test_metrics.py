"""Prometheus metrics (GET /metrics), request ids and JSON logs (docs/observability.md).

A scripted sequence of Flight requests against a real server; /metrics is scraped over the
server's HTTP interface before and after, parsed with prometheus_client's own parser, and
every counter the sequence touches must have moved by exactly what it did.
"""

import json
import re
import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from query_util import run_query, wait_for
from quiver_util import action, get, put, stats



def demo_db(path: Path) -> str:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER, name TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"n{i}") for i in range(100)])
    return f"demo=sqlite://{path}"


Samples = dict[tuple[str, frozenset], float]


def scrape(url: str) -> tuple[Samples, dict[str, str]]:
    """Every sample of GET /metrics by (name, labels), and each family's type."""
    r = requests.get(f"{url}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    samples, types = {}, {}
    for family in text_string_to_metric_families(r.text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def value(samples: Samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels) -> float:
    """Sum over every sample of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


@pytest.fixture
def served(quiver, workdir):
    """A server with the HTTP interface and a SQLite source 'demo'."""
    srv = quiver(["--http", "127.0.0.1:0", "--source", demo_db(workdir / "demo.db")])
    return srv, srv.http_url  # the second stdout line (conftest)


def test_counters_move_exactly_as_the_requests_did(served):
    srv, url = served
    client = srv.client()
    before, _ = scrape(url)

    table = pa.table({"x": list(range(1000))})
    ref = put(client, "m/a", table)                           # DoPut:object ok
    assert get(client, "m/a")[0] == table                     # DoGet:object hit
    assert get(client, "m/a")[0] == table                     # DoGet:object hit
    with pytest.raises(pa.ArrowKeyError):                     # DoGet:object NOT_FOUND
        get(client, "m/missing")
    cond = json.dumps({"key": "m/a", "if_none_match": ref["version"]})
    assert get(client, cond)[0].num_rows == 0                 # DoGet:object not_modified
    sql = "SELECT id, name FROM t WHERE id < 10"
    _, metas = run_query(client, source="demo", sql=sql, ttl_s=600)   # DoGet:query miss
    assert metas[0]["cache"] == "miss"
    # The fill publishes after its last batch is sent: wait for the object and the result.
    wait_for(lambda: stats(client)["entries"] == 2, what="the query result to be cached")
    _, metas = run_query(client, source="demo", sql=sql, ttl_s=600)   # DoGet:query hit
    assert metas[0]["cache"] == "hit"
    assert action(client, "invalidate", {"key": "m/a"})       # DoAction:invalidate ok
    with pytest.raises(pa.ArrowNotImplementedError):          # DoAction:unknown UNIMPLEMENTED
        list(client.do_action(flight.Action("no-such-action", b"")))
    final_stats = stats(client)

    after, types = scrape(url)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    req = "quiver_requests_total"
    flight_ = {"interface": "flight"}
    assert delta(req, **flight_, kind="DoPut:object", outcome="ok") == 1
    assert delta(req, **flight_, kind="DoGet:object", outcome="hit") == 2
    assert delta(req, **flight_, kind="DoGet:object", outcome="error") == 1
    assert delta(req, **flight_, kind="DoGet:object", outcome="not_modified") == 1
    assert delta(req, **flight_, kind="DoGet:query", outcome="miss") == 1
    assert delta(req, **flight_, kind="DoGet:query", outcome="hit") == 1
    assert delta(req, **flight_, kind="DoAction:invalidate", outcome="ok") == 1
    assert delta(req, **flight_, kind="DoAction:unknown", outcome="error") == 1
    errors = "quiver_request_errors_total"
    assert delta(errors, **flight_, kind="DoGet:object", code="NOT_FOUND") == 1
    assert delta(errors, **flight_, kind="DoAction:unknown", code="UNIMPLEMENTED") == 1
    assert (total(after, errors, **flight_) - total(before, errors, **flight_)) == 2
    # The latency histogram saw each DoGet of an object once.
    hist = "quiver_request_duration_seconds"
    assert types[hist] == "histogram"
    assert delta(f"{hist}_count", **flight_, kind="DoGet:object") == 4
    assert delta(f"{hist}_bucket", **flight_, kind="DoGet:object", le="+Inf") == 4
    assert delta("quiver_served_bytes_total", **flight_, kind="DoGet:object") > 2 * 8000

    # The engine's own counters, read at scrape time, agree with the stats action.
    lookups = "quiver_cache_requests_total"
    assert delta(lookups, cache="object", result="hit") == 3   # 2 gets + the conditional one
    assert delta(lookups, cache="object", result="miss") == 1
    assert delta(lookups, cache="query", result="miss") == 1
    assert delta(lookups, cache="query", result="hit") == 1
    assert delta("quiver_object_not_modified_total") == 1
    assert delta("quiver_object_puts_total", result="ok") == 1
    assert delta("quiver_invalidations_total") == 1
    assert delta("quiver_fills_started_total") == 1
    assert value(after, "quiver_fills_failed_total") == final_stats["queries"]["failures"]
    assert value(after, lookups, cache="object", result="hit") == final_stats["hits"]
    assert value(after, lookups, cache="query", result="hit") == final_stats["queries"]["hits"]
    assert value(after, "quiver_stored_bytes") == final_stats["bytes"]
    assert value(after, "quiver_budget_bytes", tier="store") == final_stats["budget"]["cache_size"]
    assert value(after, "quiver_budget_used_bytes", tier="store") == final_stats["bytes"]
    assert value(after, "quiver_budget_bytes", tier="memory") == final_stats["memory"]["capacity"]
    assert value(after, "quiver_stats_up") == 1
    assert value(after, "quiver_index_up", state="ok") == 1

    # The query ran once on its source, and nothing runs now.
    ex = "quiver_query_execution_seconds"
    assert delta(f"{ex}_count", source="demo", outcome="ok") == 1
    assert value(after, "quiver_query_executions_running", source="demo") == 0


def test_scrapes_are_http_requests(served):
    srv, url = served
    first, _ = scrape(url)
    second, _ = scrape(url)
    # A scrape is counted when it ends, after its own text was rendered: the second scrape
    # shows the first one, and no Flight request moved.
    http = {"interface": "http"}
    assert total(second, "quiver_requests_total", **http) - \
        total(first, "quiver_requests_total", **http) == 1
    assert total(second, "quiver_requests_total", interface="flight") == \
        total(first, "quiver_requests_total", interface="flight")


def test_health_and_readiness(served):
    srv, url = served
    assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
    assert requests.get(f"{url}/readyz", timeout=10).status_code == 200


class HeaderCatcher(flight.ClientMiddlewareFactory):
    """Sends `x-request-id` (if given) and keeps the `x-request-id` values each call's
    response headers carried, in order. (pyarrow calls received_headers twice per call: with
    the headers, then with the trailers.)"""

    def __init__(self):
        self.send = None
        self.received = []

    def start_call(self, info):
        return _Catcher(self)


class _Catcher(flight.ClientMiddleware):
    def __init__(self, factory):
        self.factory = factory

    def sending_headers(self):
        return {"x-request-id": self.factory.send} if self.factory.send else {}

    def received_headers(self, headers):
        if "x-request-id" in headers:
            self.factory.received.append(headers["x-request-id"])


def request_id(ids) -> str:
    assert len(ids) == 1, ids
    return ids[0]


def request_lines(text: str) -> list[dict]:
    return [j for j in map(json.loads, text.splitlines()) if j.get("msg") == "request"]


def test_request_ids_and_json_logs(quiver):
    srv = quiver(["--log-format", "json"])
    catcher = HeaderCatcher()
    client = flight.connect(srv.location, middleware=[catcher])
    table = pa.table({"x": [1, 2, 3]})

    catcher.send = "client-chosen-id.1"
    put(client, "j/a", table)
    assert request_id(catcher.received[-1]) == "client-chosen-id.1"

    catcher.send = "not sane: spaces and \"quotes\""
    assert get(client, "j/a")[0] == table
    made = request_id(catcher.received[-1])
    assert re.fullmatch(r"[0-9a-f]{32}", made), made

    catcher.send = None
    with pytest.raises(pa.ArrowKeyError):
        get(client, "j/missing")
    failed = request_id(catcher.received[-1])
    assert re.fullmatch(r"[0-9a-f]{32}", failed) and failed != made
    assert len(catcher.received) == 3  # one id per call
    client.close()

    srv.wait_for_log(failed)
    srv.stop()
    log = srv.log()
    # Every line of stderr is one JSON object with a timestamp and a level.
    for line in log.splitlines():
        j = json.loads(line)
        assert isinstance(j, dict) and j["ts"].endswith("Z") and j["level"], line
    assert any(j.get("msg", "").startswith("serving grpc://") for j in map(json.loads,
                                                                         log.splitlines()))
    by_id = {j["request_id"]: j for j in request_lines(log)}
    put_line = by_id["client-chosen-id.1"]
    assert put_line["interface"] == "flight" and put_line["kind"] == "DoPut:object"
    assert put_line["key"] == "j/a" and put_line["code"] == "OK" and put_line["outcome"] == "ok"
    assert put_line["duration_ms"] > 0
    get_line = by_id[made]
    assert get_line["kind"] == "DoGet:object" and get_line["outcome"] == "hit"
    assert get_line["bytes"] > 0 and get_line["peer"].startswith("ipv4:127.0.0.1:")
    miss_line = by_id[failed]
    assert miss_line["code"] == "NOT_FOUND" and miss_line["outcome"] == "error"
    assert "j/missing" in miss_line["error"] and miss_line["key"] == "j/missing"


def test_text_logs_still_send_request_ids(server):
    catcher = HeaderCatcher()
    client = flight.connect(server.location, middleware=[catcher])
    action(client, "stats")
    assert re.fullmatch(r"[0-9a-f]{32}", request_id(catcher.received[-1]))
    client.close()
    # The default format is spdlog's text, not JSON.
    assert not server.log().lstrip().startswith("{")


def test_a_bad_log_format_is_refused(quiver, workdir):
    srv = quiver(["--log-format", "yaml"], start=False)
    with pytest.raises(AssertionError, match="log-format"):
        srv.start()
