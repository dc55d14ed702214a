"""Shared mode under stress and failure: a stampede on three nodes, a filler killed or paused
mid-fill, cross-node live joins, and the Redis index going away.

The slow queries run on a real PostgreSQL (pg_sleep holds them open; the database counts its
own executions); the index is a real redis-server started by each test.
"""

import json
import signal
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from pg_util import postgres  # noqa: F401  (session fixture)
from quiver_util import chunks, get, get_table, put, write_config
from query_util import run_query, stats, ticket, wait_for


@pytest.fixture(scope="module")
def pg(postgres):  # noqa: F811
    postgres.execute("DROP TABLE IF EXISTS shared_executions")
    postgres.execute("CREATE TABLE shared_executions (n serial PRIMARY KEY, tag text)")
    postgres.execute("""CREATE OR REPLACE FUNCTION count_shared(tag text) RETURNS int
                        LANGUAGE plpgsql VOLATILE AS $$
                        BEGIN INSERT INTO shared_executions (tag) VALUES (tag); RETURN 1; END $$""")
    return postgres


def executions(pg, tag):
    return pg.execute(f"SELECT count(*) FROM shared_executions WHERE tag = '{tag}'")[0][0]


def slow_sql(tag, rows=60_000, pauses=4, pause_s=0.3, first_s=0.3):
    """A query that runs for about first_s + pauses * pause_s, streaming batches between its
    pauses, and records each execution in the database."""
    every = rows // pauses
    return (f"SELECT g.i, md5(g.i::text) AS h, "
            f"CASE WHEN g.i % {every} = 0 THEN pg_sleep({pause_s})::text END AS pause, c.one "
            f"FROM (SELECT count_shared('{tag}') AS one, pg_sleep({first_s})) c, "
            f"generate_series(1, {rows}) AS g(i)")


def pg_config(workdir, pg, name="shared.json", **extra):
    return write_config(workdir, name, {
        "sources": {"pg": {"driver": "postgresql", "uri": pg.uri, "max_concurrent": 16,
                           "max_queue": 256,
                           "statement_options": {"adbc.postgresql.batch_size_hint_bytes": "65536"}}},
        "lease_ttl_s": 1.5, "fill_poll_s": 0.05, **extra})


class Reader(threading.Thread):
    """Reads one query through one node, recording when its first batch came and how it
    ended."""

    def __init__(self, node, sql):
        super().__init__(daemon=True)
        self.node, self.sql = node, sql
        self.first = threading.Event()
        self.first_at = self.end_at = None
        self.table = self.error = self.meta = None

    def run(self):
        try:
            reader = self.node.client().do_get(ticket(source="pg", sql=self.sql))
            batches = []
            for chunk in chunks(reader):
                if chunk.app_metadata is not None and self.meta is None:
                    self.meta = json.loads(chunk.app_metadata.to_pybytes())
                if chunk.data is not None:
                    if self.first_at is None:
                        self.first_at = time.monotonic()
                        self.first.set()
                    batches.append(chunk.data)
            self.table = pa.Table.from_batches(batches, schema=reader.schema)
        except Exception as e:  # noqa: BLE001 - inspected by the test
            self.error = e
        finally:
            self.end_at = time.monotonic()
            self.first.set()


def expected_rows(pg, sql):
    return pg.execute(f"SELECT count(*) FROM ({sql}) q")[0][0]


def test_three_nodes_and_96_clients_run_a_slow_query_once(cluster, pg, workdir):
    nodes = cluster(3, args=["--config", str(pg_config(workdir, pg))])
    sql = slow_sql("stampede", rows=40_000)
    readers = [Reader(nodes[n % 3], sql) for n in range(96)]
    for r in readers:
        r.start()
    for r in readers:
        r.join(timeout=120)
    assert not [r.error for r in readers if r.error], [r.error for r in readers if r.error][:3]
    assert executions(pg, "stampede") == 1, "PostgreSQL ran the query more than once"
    reference = readers[0].table
    assert reference.num_rows == 40_000
    assert all(r.table.equals(reference) for r in readers)
    per_node = [s["queries"] for s in nodes.stats()]
    assert sum(q["executions"] for q in per_node) == 1
    # The two nodes that did not execute streamed the filler's batches live.
    assert sum(q["remote_joins"] for q in per_node) == 2
    assert sum(1 for r in readers if r.meta["cache"] == "miss" and not r.meta["joined"]) == 1


def fill_then_follow(nodes, sql):
    """Node 0's client starts `sql`; once it has its first batch, node 1's client asks for
    it too. Returns both readers, finished without errors."""
    filler = Reader(nodes[0], sql)
    filler.start()
    assert filler.first.wait(30) and filler.error is None, filler.error
    follower = Reader(nodes[1], sql)
    follower.start()
    filler.join(60)
    follower.join(60)
    assert filler.error is None and follower.error is None, (filler.error, follower.error)
    return filler, follower


def test_a_follower_gets_its_first_batch_long_before_the_fill_ends(cluster, pg, workdir):
    nodes = cluster(2, args=["--config", str(pg_config(workdir, pg))])
    filler, follower = fill_then_follow(nodes, slow_sql("live-join", pauses=5, pause_s=0.4))
    assert follower.meta["joined"] and follower.meta["node"] == "n0"
    assert follower.table.equals(filler.table)
    # Streamed from node 0 while it ran, not read back after it ended.
    assert follower.first_at < filler.end_at - 0.5, (follower.first_at, filler.end_at)
    assert nodes.stats()[1]["queries"]["remote_joins"] == 1
    assert executions(pg, "live-join") == 1


def test_without_live_join_a_follower_waits_for_the_published_result(cluster, pg, workdir):
    config = pg_config(workdir, pg, "wait.json", live_join=False)
    nodes = cluster(2, args=["--config", str(config)])
    filler, follower = fill_then_follow(nodes, slow_sql("wait-join", pauses=3, pause_s=0.3))
    assert follower.table.equals(filler.table)
    assert follower.first_at >= filler.end_at - 0.05, "it should have waited for the result"
    s = nodes.stats()[1]["queries"]
    assert s["waits"] == 1 and s["remote_joins"] == 0
    assert executions(pg, "wait-join") == 1


def test_a_killed_filler_is_taken_over_and_nothing_partial_is_published(cluster, pg, workdir):
    nodes = cluster(3, args=["--config", str(pg_config(workdir, pg))])
    sql = slow_sql("killed", pauses=6, pause_s=0.4)
    full = expected_rows(pg, sql.replace("count_shared('killed')", "1"))
    doomed = Reader(nodes[0], sql)
    doomed.start()
    assert doomed.first.wait(30) and doomed.error is None, doomed.error
    nodes[0].kill()  # mid-fill: its lease stays until it expires
    doomed.join(30)
    assert doomed.error is not None, "a client of the killed node cannot get a whole result"
    # Clients of the other nodes: one node takes the fill over once the lease expires.
    readers = [Reader(nodes[n], sql) for n in (1, 2, 1, 2)]
    for r in readers:
        r.start()
    for r in readers:
        r.join(60)
    assert not [r.error for r in readers if r.error], [r.error for r in readers if r.error]
    assert all(r.table.num_rows == full for r in readers)
    # The killed node's statement died with its connection (its count rolled back); the
    # taker's ran once for all four readers.
    assert executions(pg, "killed") == 1
    per_node = [stats(n.client())["queries"] for n in nodes.nodes[1:]]  # node 0 is dead
    assert sum(q["takeovers"] for q in per_node) == 1
    # What is published is the taker's whole result; the killed node's partial temp file
    # was never published.
    c = nodes[1].client()
    wait_for(lambda: stats(c)["entries"] == 1, what="the taken-over result to be published")
    table, meta = run_query(c, source="pg", sql=sql)
    assert meta[0]["cache"] == "hit" and meta[0]["node"] in ("n1", "n2")
    assert table.num_rows == full
    # Node 0 comes back under its name: what it left half-written goes, nothing else.
    left = [p.name for p in (nodes.data_dir / ".tmp").iterdir() if p.name.startswith("n0~")]
    assert left, "the killed node's temp file should still be there"
    nodes[0].start()
    assert not [p for p in (nodes.data_dir / ".tmp").iterdir() if p.name.startswith("n0~")]
    assert run_query(nodes[0].client(), source="pg", sql=sql)[1][0]["cache"] == "hit"


def test_a_paused_filler_is_fenced_and_cannot_publish(cluster, pg, workdir):
    nodes = cluster(2, args=["--config", str(pg_config(workdir, pg))])
    sql = slow_sql("paused", pauses=4, pause_s=0.3)
    paused = Reader(nodes[0], sql)
    paused.start()
    assert paused.first.wait(30) and paused.error is None, paused.error
    nodes[0].proc.send_signal(signal.SIGSTOP)
    try:
        # Node 1 finds node 0 silent, waits out its lease, takes the fill over, publishes.
        taker = Reader(nodes[1], sql)
        taker.start()
        taker.join(60)
        assert taker.error is None, taker.error
        c = nodes[1].client()
        wait_for(lambda: stats(c)["entries"] == 1, what="node 1's result to be published")
        assert stats(c)["queries"]["takeovers"] == 1
    finally:
        nodes[0].proc.send_signal(signal.SIGCONT)
    paused.join(60)
    # Node 0 resumes: its fill ends, but its publish is refused -- its lease was taken.
    nodes[0].wait_for_log("publish refused (fenced)", timeout=30)
    assert "lost its fill lease" in nodes[0].log()
    assert stats(nodes[0].client())["queries"]["fenced"] == 1
    table, meta = run_query(nodes[0].client(), source="pg", sql=sql)
    assert meta[0]["cache"] == "hit" and meta[0]["node"] == "n1", meta
    assert table.equals(taker.table)
    assert executions(pg, "paused") == 2


def test_redis_lost_and_restarted_mid_run_costs_only_latency(cluster, workdir):
    """Fail-open: while Redis is away, nodes serve what the store holds and run queries
    uncached; when it comes back empty, one node rebuilds the index from the manifests."""
    import sqlite3
    db = workdir / "outage.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (i INTEGER)")
    con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(5000)])
    con.commit()
    con.close()
    nodes = cluster(3, args=["--source", f"lite=sqlite://{db}"])
    clients = [n.client() for n in nodes]
    objects = {f"o/k{i}": pa.table({"x": [i] * (i + 1)}) for i in range(6)}
    for i, (key, t) in enumerate(objects.items()):
        put(clients[i % 3], key, t)
    cached_sql = "SELECT count(*) AS n, sum(i) AS s FROM t"
    reference, _ = run_query(clients[0], source="lite", sql=cached_sql)
    wait_for(lambda: stats(clients[1])["entries"] == 7, what="the result to be published")

    errors, served = [], [0]
    stop = threading.Event()

    def workload(n):
        client = nodes[n % 3].client()
        j = 0
        while not stop.is_set():
            j += 1
            try:
                key = f"o/k{j % 6}"
                assert get_table(client, key).equals(objects[key])
                got, _ = run_query(client, source="lite", sql=cached_sql)
                assert got.equals(reference)
                fresh, _ = run_query(client, source="lite", sql=f"SELECT {j % 50} AS v, count(*) AS n FROM t")
                assert fresh.column("n").to_pylist() == [5000]
                served[0] += 1
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

    threads = [threading.Thread(target=workload, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: served[0] >= 20, what="the workload to run")
        nodes.redis.kill()
        nodes.wait_for_log("is unavailable", timeout=15)
        before = served[0]
        wait_for(lambda: served[0] >= before + 20, what="requests served without Redis")
        # A put cannot be published without the index: a clear UNAVAILABLE, nothing stored.
        with pytest.raises(flight.FlightUnavailableError, match="unavailable"):
            put(nodes[0].client(), "o/new", pa.table({"x": [1]}))
        rebuilds = nodes.logs().count("rebuilding it from the manifests")
        nodes.redis.start()  # same port, empty
        wait_for(lambda: nodes.logs().count("rebuilding it from the manifests") > rebuilds,
                 timeout=20, what="a node to rebuild the index")
        wait_for(lambda: stats(clients[2])["entries"] >= 7, timeout=20,
                 what="the rebuilt index to hold the objects and the cached result")
        wait_for(lambda: all(s["index"]["state"] == "ok" for s in nodes.stats()), timeout=20,
                 what="every node to see the index again")
        before = served[0]
        wait_for(lambda: served[0] >= before + 20, what="requests served after the rebuild")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors[:5]
    assert sum(x["reads_without_index"] for x in nodes.stats()) > 0
    assert put(clients[1], "o/after", pa.table({"x": [2]}))["version"] == 1
    assert not list((nodes.data_dir / "manifests" / "o" / "new").rglob("*.json"))


def test_failing_closed_answers_unavailable_while_redis_is_away(cluster, workdir):
    config = write_config(workdir, "closed.json", {"shared_failure": "closed"})
    nodes = cluster(2, args=["--config", str(config)])
    put(nodes[0].client(), "c/o", pa.table({"x": [1, 2]}))
    nodes.redis.kill()
    for node in nodes.nodes:
        with pytest.raises(flight.FlightUnavailableError, match="index .* is unavailable"):
            get(node.client(), "c/o")
    nodes.redis.start()
    wait_for(lambda: _reads(nodes[1], "c/o"), timeout=20, what="reads to work again")


def _reads(node, key):
    try:
        return get_table(node.client(), key).num_rows == 2
    except (flight.FlightUnavailableError, KeyError):
        return False
