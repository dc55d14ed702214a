"""The query cache against a real SQLite database through the ADBC SQLite driver."""

import json
import sqlite3
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from management_util import entry_map
from quiver_util import chunks, write_config
from query_util import (assert_failure_reaches_every_reader, run_query, stats, ticket,
                        wait_cached, wait_for)

ROWS = 200_000


@pytest.fixture
def lite_db(workdir):
    path = workdir / "events.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, grp TEXT, amount INTEGER)")
    con.execute(f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS})
                    INSERT INTO events SELECT i, 'g' || (i % 5), i % 1000 FROM n""")
    con.commit()
    con.close()
    return path


@pytest.fixture
def lite(quiver, lite_db):
    return quiver(args=["--source", f"lite=sqlite://{lite_db}"])


AGG = "SELECT grp, count(*) AS n, sum(amount) AS total FROM events GROUP BY grp ORDER BY grp"


def expected_agg(db, where="1=1", params=()):
    con = sqlite3.connect(db)
    rows = con.execute(f"SELECT grp, count(*), sum(amount) FROM events WHERE {where} "
                       "GROUP BY grp ORDER BY grp", params).fetchall()
    con.close()
    return rows


def as_rows(table):
    return [tuple(r.values()) for r in table.to_pylist()]


def await_committed(client, n):
    wait_for(lambda: stats(client)["entries"] >= n, what=f"{n} cached results")


def test_miss_then_hit_identical(lite, lite_db):
    c = lite.client()
    t1, m1 = run_query(c, source="lite", sql=AGG)
    assert m1[0]["cache"] == "miss" and m1[0]["cached"] is True
    assert as_rows(t1) == expected_agg(lite_db)
    await_committed(c, 1)
    t2, m2 = run_query(c, source="lite", sql=AGG)
    assert m2[0]["cache"] == "hit"
    assert m2[0]["key"] == m1[0]["key"] and len(m2[0]["key"]) == 64
    assert m2[0]["expires_ms"] - m2[0]["created_ms"] == 300_000  # the default TTL
    assert m2[0]["exec_ms"] >= 0
    assert t2.equals(t1)
    s = stats(c)["queries"]
    assert s["executions"] == 1 and s["hits"] == 1 and s["misses"] == 1


def test_flight_info_then_doget(lite):
    c = lite.client()
    request = json.dumps({"source": "lite", "sql": AGG}).encode()
    info = c.get_flight_info(flight.FlightDescriptor.for_command(request))
    meta = json.loads(info.app_metadata)
    assert meta["cache"] == "miss"
    assert info.schema.names == ["grp", "n", "total"]
    table = c.do_get(info.endpoints[0].ticket).read_all()
    assert table.num_rows == 5
    await_committed(c, 1)
    info2 = c.get_flight_info(flight.FlightDescriptor.for_command(request))
    assert json.loads(info2.app_metadata)["cache"] == "hit"
    assert info2.total_records == 5 and info2.total_bytes > 0
    schema = c.get_schema(flight.FlightDescriptor.for_command(request)).schema
    assert schema.equals(info.schema)
    assert stats(c)["queries"]["executions"] == 1, "GetFlightInfo and DoGet ran it twice"


def test_flight_info_hands_the_running_fill_to_the_doget(quiver, lite_db, workdir):
    """With cancel_unread_fills, a fill nobody reads is cancelled; GetFlightInfo (which
    stops reading at the schema) must hand the fill to the DoGet that follows, not
    abandon it: one execution, the whole result."""
    config = write_config(workdir, "cancel.json", {"cancel_unread_fills": True})
    srv = quiver(args=["--config", str(config), "--source", f"lite=sqlite://{lite_db}"])
    c = srv.client()
    n = 1_000_000  # ~1 s in SQLite, many batches: still running when the schema is out
    sql = (f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) "
           "SELECT i FROM n")
    request = json.dumps({"source": "lite", "sql": sql}).encode()
    info = c.get_flight_info(flight.FlightDescriptor.for_command(request))
    meta = json.loads(info.app_metadata)
    assert meta["cache"] == "miss"
    # The fill runs to its end with no reader attached, and is published (an abandoned fill
    # would have been cancelled); then the DoGet redeems the ticket.
    wait_cached(c, meta["key"], timeout=30)
    table = c.do_get(info.endpoints[0].ticket).read_all()
    assert table.num_rows == n and table.column("i")[n - 1].as_py() == n
    assert stats(c)["queries"]["executions"] == 1, "the fill was abandoned and ran again"


def test_ttl_expiry(lite):
    # The TTL counts from when the execution started (a loaded machine can take a
    # second or more to run it), so it is a few seconds here.
    c = lite.client()
    _, m = run_query(c, source="lite", sql=AGG, ttl_s=3)
    assert m[0]["expires_ms"] - m[0]["created_ms"] == 3000
    await_committed(c, 1)
    assert run_query(c, source="lite", sql=AGG, ttl_s=3)[1][0]["cache"] == "hit"
    time.sleep(max(0.0, (m[0]["expires_ms"] / 1000) - time.time()) + 0.2)
    _, again = run_query(c, source="lite", sql=AGG, ttl_s=3)
    assert again[0]["cache"] == "miss", "an expired entry was served"
    assert stats(c)["queries"]["executions"] == 2


def test_expired_results_are_reclaimed_in_the_background(quiver, lite_db, workdir):
    config = write_config(workdir, "q.json", {
        "reclaim_interval_s": 0.2,
        "sources": {"lite": {"driver": "sqlite", "uri": str(lite_db)}}})
    srv = quiver(args=["--config", str(config)])
    c = srv.client()
    run_query(c, source="lite", sql=AGG, ttl_s=0.5)
    await_committed(c, 1)
    assert srv.data_files(), "the result was not stored"
    wait_for(lambda: stats(c)["queries"]["reclaimed"] == 1, what="reclaim")
    assert stats(c)["entries"] == 0
    wait_for(lambda: not srv.data_files(), what="the expired file to be deleted")


def test_preview_bypasses_the_cache(lite, lite_db):
    c = lite.client()
    t, m = run_query(c, source="lite", sql=AGG, preview=True)
    assert m[0]["cache"] == "bypass" and m[0]["cached"] is False and m[0]["reason"] == "preview"
    assert as_rows(t) == expected_agg(lite_db)
    q = stats(c)["queries"]
    assert q["bypasses"] == 1 and q["misses"] == 0 and q["executions"] == 1
    assert stats(c)["entries"] == 0
    assert run_query(c, source="lite", sql=AGG)[1][0]["cache"] == "miss"
    # Once that execution's result is published it is the only entry, at version 1: the
    # preview stored nothing.
    await_committed(c, 1)
    assert stats(c)["entries"] == 1 and entry_map(c)["@q/" + m[0]["key"]]["version"] == 1
    info = c.get_flight_info(flight.FlightDescriptor.for_command(
        json.dumps({"source": "lite", "sql": AGG, "preview": True}).encode()))
    assert json.loads(info.app_metadata)["cache"] == "bypass"
    assert stats(c)["queries"]["bypasses"] == 1, "GetFlightInfo executed a preview"


def test_nondeterministic_not_cached_unless_asked(lite):
    c = lite.client()
    sql = "SELECT id, random() AS r FROM events WHERE id <= 3"
    t1, m1 = run_query(c, source="lite", sql=sql)
    assert m1[0]["cache"] == "bypass" and "random()" in m1[0]["reason"]
    t2, _ = run_query(c, source="lite", sql=sql)
    assert t1.column("r") != t2.column("r"), "random() returned the same values twice"
    q = stats(c)["queries"]
    assert q["bypasses"] == 2 and q["misses"] == 0
    assert stats(c)["entries"] == 0
    _, m3 = run_query(c, source="lite", sql=sql, cache_nondeterministic=True)
    assert m3[0]["cache"] == "miss"
    await_committed(c, 1)
    # That result is the only entry, at version 1: the two bypasses stored nothing.
    assert stats(c)["entries"] == 1 and entry_map(c)["@q/" + m3[0]["key"]]["version"] == 1
    t4, m4 = run_query(c, source="lite", sql=sql, cache_nondeterministic=True)
    assert m4[0]["cache"] == "hit"


def test_params_are_bound_and_part_of_the_key(lite, lite_db):
    c = lite.client()
    sql = "SELECT grp, count(*) AS n, sum(amount) AS total FROM events WHERE id > ? GROUP BY grp ORDER BY grp"
    t10, m10 = run_query(c, source="lite", sql=sql, params=[10])
    assert as_rows(t10) == expected_agg(lite_db, "id > ?", (10,))
    t20, m20 = run_query(c, source="lite", sql=sql, params=[20])
    assert as_rows(t20) == expected_agg(lite_db, "id > ?", (20,))
    assert m20[0]["cache"] == "miss" and m20[0]["key"] != m10[0]["key"]
    await_committed(c, 2)
    assert run_query(c, source="lite", sql=sql, params=[10])[1][0]["cache"] == "hit"
    # A parameter is a value, never SQL.
    t_evil, _ = run_query(c, source="lite", sql="SELECT count(*) AS n FROM events WHERE grp = ?",
                          params=["g1' OR '1'='1"])
    assert t_evil.column("n").to_pylist() == [0]


def test_equivalent_sql_text_hits_the_same_entry(lite):
    c = lite.client()
    _, m1 = run_query(c, source="lite", sql=AGG)
    await_committed(c, 1)
    spaced = AGG.replace(" ", "\n   ") + " -- trailing comment\n;"
    _, m2 = run_query(c, source="lite", sql="/* dashboard 7 */ " + spaced)
    assert m2[0]["cache"] == "hit" and m2[0]["key"] == m1[0]["key"]
    _, m3 = run_query(c, source="lite", sql=AGG.replace("ORDER BY grp", "ORDER BY grp DESC"))
    assert m3[0]["cache"] == "miss"


def test_oversized_result_streams_but_is_not_cached(quiver, lite_db):
    srv = quiver(args=["--source", f"lite=sqlite://{lite_db}", "--max-entry-bytes", "64KiB"])
    c = srv.client()
    t, metas = run_query(c, source="lite", sql="SELECT id, grp, amount FROM events ORDER BY id")
    assert t.num_rows == ROWS
    assert t.column("id").to_pylist()[:3] == [1, 2, 3]
    assert any(m.get("cached") is False and "max_entry_bytes" in m.get("reason", "")
               for m in metas), metas
    # The fill ends by counting its result as not cached, and its temp file goes.
    wait_for(lambda: stats(c)["queries"]["not_cached"] == 1, what="the fill to end uncached")
    wait_for(lambda: not srv.tmp_files(), what="the oversized result's temp file to go")
    assert stats(c)["entries"] == 0 and not srv.data_files() and not srv.tmp_files()
    assert run_query(c, source="lite", sql="SELECT id, grp, amount FROM events ORDER BY id",
                     )[1][0]["cache"] == "miss"


def test_failure_mid_stream_reaches_every_reader_and_nothing_is_cached(lite):
    sql = ("SELECT id, CASE WHEN id > 150000 THEN abs(-9223372036854775807 - 1) ELSE id END AS v "
           "FROM events ORDER BY id")
    assert_failure_reaches_every_reader(lite, "lite", sql, "overflow", readers=3)


def test_bad_requests_name_the_problem(lite):
    c = lite.client()
    cases = [
        ({"source": "nope", "sql": "SELECT 1"}, "unknown source 'nope'"),
        ({"source": "lite"}, "'sql' is required"),
        ({"source": "lite", "sql": "SELECT 1", "ttl": 5}, "unknown query field 'ttl'"),
        ({"source": "lite", "sql": "SELECT 1", "params": {"a": 1}}, "'params' must be an array"),
        ({"source": "lite", "sql": "SELECT 1", "ttl_s": 0}, "ttl_s must be > 0"),
        ({"source": "lite", "sql": "SELEC oops"}, "syntax error"),
    ]
    for request, message in cases:
        with pytest.raises(pa.ArrowException, match=message):
            run_query(c, **request)


def test_queue_bound_gives_busy(quiver, lite_db, workdir):
    config = write_config(workdir, "q.json", {"sources": {"lite": {
        "driver": "sqlite", "uri": str(lite_db), "max_concurrent": 1, "max_queue": 0}}})
    srv = quiver(args=["--config", str(config)])
    slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) "
            "SELECT count(*) AS c FROM n")
    results = {}

    def run_slow():
        results["slow"] = run_query(srv.client(), source="lite", sql=slow)[0]

    t = threading.Thread(target=run_slow)
    t.start()
    wait_for(lambda: stats(srv.client())["queries"]["executions"] == 1, what="the slow query")
    with pytest.raises(flight.FlightUnavailableError, match="resource exhausted") as busy:
        run_query(srv.client(), source="lite", sql="SELECT 1 AS one")
    assert json.loads(busy.value.extra_info) == {"error": "busy", "setting": "max_queue",
                                                 "limit": 0}
    t.join()
    assert results["slow"].column("c").to_pylist() == [3_000_000]
    assert run_query(srv.client(), source="lite", sql="SELECT 1 AS one")[0].num_rows == 1


def test_joiners_stream_live_and_the_source_runs_once(lite):
    # ~0.5-1.5 s of CPU in SQLite producing 20 batches; every client that asked early must
    # see its first batch long before the fill ends, and the query must run once.
    # (printf makes each row cost enough for the fill to outlast the clients' arrivals)
    sql = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1300000) "
           "SELECT i, length(printf('%.40f', i / 7.0)) * i AS j FROM n")
    timings = {}

    def client_run(n):
        c = lite.client()
        start = time.monotonic()
        reader = c.do_get(ticket(source="lite", sql=sql))
        first = None
        rows = 0
        for chunk in chunks(reader):
            if first is None:
                first = time.monotonic()
            rows += chunk.data.num_rows
        timings[n] = (start, first, time.monotonic(), rows)

    threads = [threading.Thread(target=client_run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    s = stats(lite.client())["queries"]
    assert s["executions"] == 1, s
    assert s["joins"] + s["hits"] == 7
    fill_end = min(end for _, _, end, _ in timings.values())
    # Clients that asked well before the fill ended must have been streaming long before it
    # ended (a joiner reads live from the first batch, it does not wait for the end).
    early = [n for n, (start, _, _, _) in timings.items() if start < fill_end - 0.3]
    assert len(early) >= 3, f"the fill ended too soon to test joiners ({len(early)} early)"
    for n, (start, first, end, rows) in timings.items():
        assert rows == 1_300_000
        if n in early:
            assert first < fill_end - 0.2, f"client {n} got its first batch only as the fill ended"


def test_shutdown_interrupts_running_queries(lite):
    # A query that would run for many seconds must not hold up a SIGTERM.
    slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000000) "
            "SELECT count(*) AS c FROM n")
    errors = []

    def run():
        try:
            run_query(lite.client(), source="lite", sql=slow)
        except Exception as e:  # the server goes away mid-query
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    wait_for(lambda: stats(lite.client())["queries"]["executions"] == 1, what="the slow query")
    started = time.monotonic()
    lite.stop()  # SIGTERM, asserts exit code 0
    assert time.monotonic() - started < 8, "shutdown waited for the query to finish"
    t.join(timeout=30)
    assert errors, "the interrupted query was reported as a success"
    assert "quiver stopped" in lite.log()
