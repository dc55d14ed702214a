"""The query cache against a real PostgreSQL server through the ADBC PostgreSQL driver."""

import json
import threading
import time

import pyarrow as pa
import pytest

from pg_util import postgres  # noqa: F401  (session fixture)
from quiver_util import chunks, write_config
from query_util import assert_failure_reaches_every_reader, run_query, stats, ticket, wait_for


@pytest.fixture(scope="module")
def pg(postgres):  # noqa: F811
    postgres.execute("DROP TABLE IF EXISTS items, executions")
    postgres.execute("CREATE TABLE items AS SELECT i AS id, 'item-' || i AS name, i % 10 AS bucket "
                     "FROM generate_series(1, 50000) i")
    # A table the slow query writes to, so the database itself counts its executions.
    postgres.execute("CREATE TABLE executions (n serial PRIMARY KEY, at timestamptz DEFAULT now())")
    postgres.execute("""CREATE OR REPLACE FUNCTION count_execution() RETURNS int
                        LANGUAGE plpgsql VOLATILE AS $$
                        BEGIN INSERT INTO executions DEFAULT VALUES; RETURN 1; END $$""")
    return postgres


@pytest.fixture
def srv(quiver, pg, workdir):
    config = write_config(workdir, "pg.json", {"sources": {"pg": {
        "driver": "postgresql", "uri": pg.uri, "max_concurrent": 8, "max_queue": 128,
        # Small batches, so that a result streams as many messages while it is produced.
        "statement_options": {"adbc.postgresql.batch_size_hint_bytes": "65536"}}}})
    return quiver(args=["--config", str(config)])


AGG = "SELECT bucket, count(*) AS n, sum(id) AS total FROM items GROUP BY bucket ORDER BY bucket"


def db_rows(pg, sql):
    return [tuple(r) for r in pg.execute(sql)]


def executions_in_db(pg):
    return pg.execute("SELECT count(*) FROM executions")[0][0]


def test_miss_then_hit_identical(srv, pg):
    c = srv.client()
    t1, m1 = run_query(c, source="pg", sql=AGG)
    assert m1[0]["cache"] == "miss"
    assert [tuple(r.values()) for r in t1.to_pylist()] == db_rows(pg, AGG)
    wait_for(lambda: stats(c)["entries"] == 1, what="commit")
    t2, m2 = run_query(c, source="pg", sql=AGG)
    assert m2[0]["cache"] == "hit" and t2.equals(t1)


def test_ttl_preview_and_nondeterministic(srv):
    c = srv.client()
    _, first = run_query(c, source="pg", sql=AGG, ttl_s=2)
    wait_for(lambda: stats(c)["entries"] == 1, what="commit")
    assert run_query(c, source="pg", sql=AGG, ttl_s=2)[1][0]["cache"] == "hit"
    time.sleep(max(0.0, first[0]["expires_ms"] / 1000 - time.time()) + 0.2)
    assert run_query(c, source="pg", sql=AGG, ttl_s=2)[1][0]["cache"] == "miss"

    _, mp = run_query(c, source="pg", sql="SELECT id FROM items WHERE id < 5", preview=True)
    assert mp[0]["cache"] == "bypass" and mp[0]["reason"] == "preview"
    t1, mn = run_query(c, source="pg", sql="SELECT clock_timestamp() AS t")
    assert mn[0]["cache"] == "bypass" and "clock_timestamp()" in mn[0]["reason"]
    t2, _ = run_query(c, source="pg", sql="SELECT clock_timestamp() AS t")
    assert t1.column("t")[0] != t2.column("t")[0]
    _, mnow = run_query(c, source="pg", sql="SELECT now() AS t", cache_nondeterministic=True)
    assert mnow[0]["cache"] == "miss"


def test_params_bound_and_keyed(srv, pg):
    c = srv.client()
    sql = "SELECT count(*) AS n FROM items WHERE id <= $1 AND name <> $2"
    t1, m1 = run_query(c, source="pg", sql=sql, params=[100, "x"])
    assert t1.column("n").to_pylist() == [100]
    t2, m2 = run_query(c, source="pg", sql=sql, params=[250, "x"])
    assert t2.column("n").to_pylist() == [250] and m2[0]["key"] != m1[0]["key"]
    wait_for(lambda: stats(c)["entries"] == 2, what="commits")
    assert run_query(c, source="pg", sql="SELECT count(*)  AS n FROM items\nWHERE id <= $1 AND "
                     "name <> $2 -- same query", params=[100, "x"])[1][0]["cache"] == "hit"
    injected, _ = run_query(c, source="pg", sql="SELECT count(*) AS n FROM items WHERE name = $1",
                            params=["x' OR '1'='1"])
    assert injected.column("n").to_pylist() == [0]


def test_single_flight_32_clients(srv, pg):
    before = executions_in_db(pg)
    # count_execution() runs once per execution; pg_sleep holds the fill open; the rows
    # then stream in 64 KiB batches with pauses, so joiners can read before it ends.
    sql = ("SELECT g.i, md5(g.i::text) AS h, "
           "CASE WHEN g.i % 40000 = 0 THEN pg_sleep(0.4)::text END AS pause, c.one "
           "FROM (SELECT count_execution() AS one, pg_sleep(0.5)) c, "
           "generate_series(1, 160000) AS g(i)")
    results, timings, errors = {}, {}, []

    def client_run(n):
        try:
            c = srv.client()
            start = time.monotonic()
            reader = c.do_get(ticket(source="pg", sql=sql))
            batches, first, meta = [], None, None
            for chunk in chunks(reader):
                if first is None:
                    first = time.monotonic()
                    meta = json.loads(chunk.app_metadata.to_pybytes())
                batches.append(chunk.data)
            results[n] = pa.Table.from_batches(batches)
            timings[n] = (start, first, time.monotonic(), meta)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client_run, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert executions_in_db(pg) - before == 1, "PostgreSQL ran the query more than once"
    s = stats(srv.client())["queries"]
    assert s["executions"] == 1
    key = timings[0][3]["key"]
    assert s["executions_by_key"][key] == 1
    reference = results[0]
    assert reference.num_rows == 160000
    for n in range(32):
        assert results[n].equals(reference), f"client {n} got a different result"
    fill_end = min(end for _, _, end, _ in timings.values())
    joiners = [t for t in timings.values() if t[3]["cache"] == "miss" and t[3]["joined"]]
    assert len(joiners) >= 20, f"only {len(joiners)} requests joined the fill"
    for start, first, end, meta in joiners:
        assert first < fill_end - 0.3, "a joiner got its first batch only when the fill ended"


def test_failure_mid_stream(srv, pg):
    sql = ("SELECT i, CASE WHEN i > 150000 THEN 1 / (i - i) ELSE i END AS v "
           "FROM generate_series(1, 200000) i")
    assert_failure_reaches_every_reader(srv, "pg", sql, "division by zero", readers=4)


def test_reader_cancel_does_not_cancel_the_fill(srv, pg):
    sql = ("SELECT g.i, md5(g.i::text) AS h, "
           "CASE WHEN g.i % 50000 = 0 THEN pg_sleep(0.3)::text END AS pause "
           "FROM generate_series(1, 150000) AS g(i)")
    c1, c2 = srv.client(), srv.client()
    quitter = c1.do_get(ticket(source="pg", sql=sql))
    quitter.read_chunk()
    result = {}
    stayer = threading.Thread(target=lambda: result.setdefault(
        "t", run_query(c2, source="pg", sql=sql)))
    stayer.start()
    wait_for(lambda: stats(srv.client())["queries"]["joins"] == 1,
             what="the second reader to join the fill")
    quitter.cancel()
    c1.close()
    stayer.join()
    table, metas = result["t"]
    assert metas[0]["joined"] is True
    assert table.num_rows == 150000
    wait_for(lambda: stats(srv.client())["entries"] == 1, what="the fill to commit")
    t, m = run_query(srv.client(), source="pg", sql=sql)
    assert m[0]["cache"] == "hit" and t.equals(table)
    assert stats(srv.client())["queries"]["executions"] == 1
