"""Shared mode under stress and failure: a stampede on three nodes, a filler killed or paused
mid-fill, cross-node live joins, and the Redis index going away.

The slow queries run on a real PostgreSQL (pg_sleep holds them open; the database counts its
own executions); the index is a real redis-server started by each test.
"""

import signal
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from management_util import lite_args
from management_util import lite_db  # noqa: F401  (fixture)
from pg_util import executions, install_execution_log, slow_sql, source_config
from pg_util import postgres  # noqa: F401  (session fixture)
from quiver_util import get, get_table, manifest_versions, put, write_config
from query_util import run_query, stats, wait_for


@pytest.fixture(scope="module")
def pg(postgres):  # noqa: F811
    install_execution_log(postgres)
    return postgres


def pg_config(workdir, pg, name="shared.json", **extra):
    return write_config(workdir, name, source_config(pg.uri, lease_ttl_s=1.5, fill_poll_s=0.05,
                                                     **extra))


class Reader(threading.Thread):
    """Reads one query through one node, recording when its first batch came and how it
    ended."""

    def __init__(self, node, sql):
        super().__init__(daemon=True)
        self.node, self.sql = node, sql
        self.first = threading.Event()
        self.first_at = self.end_at = None
        self.table = self.error = self.meta = None

    def _first_batch(self, metas):
        self.first_at = time.monotonic()
        self.first.set()

    def run(self):
        try:
            self.table, metas = run_query(self.node.client(), on_first_batch=self._first_batch,
                                          source="pg", sql=self.sql)
            self.meta = metas[0] if metas else None
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
    full = expected_rows(pg, sql.replace("count_execution('killed')", "1"))
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
    assert nodes.tmp_files("n0~"), "the killed node's temp file should still be there"
    nodes[0].start()
    assert not nodes.tmp_files("n0~")
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


def test_redis_lost_and_restarted_mid_run_costs_only_latency(cluster, lite_db):
    """Fail-open: while Redis is away, nodes serve what the store holds and run queries
    uncached; when it comes back empty, one node rebuilds the index from the manifests."""
    nodes = cluster(3, args=lite_args(lite_db))
    clients = [n.client() for n in nodes]
    objects = {f"o/k{i}": pa.table({"x": [i] * (i + 1)}) for i in range(6)}
    for i, (key, t) in enumerate(objects.items()):
        put(clients[i % 3], key, t)
    cached_sql = "SELECT count(*) AS n, sum(amount) AS s FROM events"
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
                fresh, _ = run_query(client, source="lite",
                                     sql=f"SELECT {j % 50} AS v, count(*) AS n FROM events")
                assert fresh.column("n").to_pylist() == [1000]
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
    assert manifest_versions(nodes.data_dir, "o/new") == []


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


class BearerMiddleware(flight.ClientMiddleware):
    def __init__(self, token):
        self.token = token

    def sending_headers(self):
        return {"authorization": f"Bearer {self.token}"}


class BearerFactory(flight.ClientMiddlewareFactory):
    def __init__(self, token):
        self.token = token

    def start_call(self, info):
        return BearerMiddleware(self.token)


def assert_live_join(nodes, pg, label):
    """Node 1's client joins node 0's running fill of a slow query labelled `label`: it is
    streamed from node 0 (a remote join), and the database ran the query once."""
    filler, follower = fill_then_follow(nodes, slow_sql(label, pauses=4, pause_s=0.3))
    assert follower.meta["joined"] and follower.meta["node"] == "n0"
    assert follower.table.equals(filler.table)
    per_node = [q["queries"] for q in nodes.stats()]
    assert per_node[1]["remote_joins"] == 1, per_node
    assert executions(pg, label) == 1


def test_live_join_between_nodes_that_require_tokens(cluster, pg, workdir):
    """With auth on, a node streams another node's fill through a node ticket, which carries
    its own proof (the cluster secret's HMAC) instead of a client token."""
    from security_util import add_token

    tokens = workdir / "tokens.json"
    token = add_token(tokens, "app", "reader", sources=["pg"], tenant=None)
    nodes = cluster(2, args=["--config", str(pg_config(workdir, pg)), "--auth", "tokens",
                             "--tokens-file", str(tokens)])
    for node in nodes:  # every client of these nodes sends the token
        node.client = (lambda n: lambda: flight.FlightClient(
            n.location, middleware=[BearerFactory(token)]))(node)
    with pytest.raises(flight.FlightUnauthenticatedError):
        run_query(flight.connect(nodes[1].location), source="pg", sql="SELECT 1")
    assert_live_join(nodes, pg, "auth-join")


def test_live_join_between_nodes_over_mutual_tls(cluster, pg, workdir):
    """Nodes serving mutual TLS reach each other over TLS, each presenting its own
    certificate, for a live join."""
    from security_util import make_pki

    pki = make_pki(workdir)
    nodes = cluster(2, args=["--config", str(pg_config(workdir, pg)),
                             "--tls-cert", str(pki["server"]), "--tls-key", str(pki["server-key"]),
                             "--tls-client-ca", str(pki["ca"])])
    assert all(n.location.startswith("grpc+tls://") for n in nodes)
    tls = {"tls_root_certs": pki["ca"].read_bytes(), "cert_chain": pki["client"].read_bytes(),
           "private_key": pki["client-key"].read_bytes()}
    for node in nodes:
        node.client = (lambda n: lambda: flight.FlightClient(n.location, **tls))(node)
    assert_live_join(nodes, pg, "tls-join")
