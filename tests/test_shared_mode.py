"""Shared mode: several quiver nodes, one data dir and one Redis/Valkey index, one cache.

Every test starts its own redis-server (or valkey-server) and quiver nodes on 127.0.0.1;
clients are pyarrow.flight. Failures (killed, paused and partitioned nodes, a lost Redis)
are in test_shared_failures.py.
"""

import json
import shutil
import subprocess
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from cluster_util import redis_binaries, self_signed_certificate
from conftest import QUIVER_BIN
from management_util import disk_bytes, ints, lite_args, put_with, query_key
from management_util import lite_db  # noqa: F401  (fixture)
from quiver_util import action, get, get_table, manifest_versions, put
from query_util import run_query, stats, wait_for

SERVERS = redis_binaries() or ["redis-server"]

AGG = "SELECT grp, count(*) AS n, sum(id) AS s FROM events GROUP BY grp ORDER BY grp"


@pytest.mark.parametrize("binary", SERVERS)
def test_a_result_filled_on_one_node_is_a_hit_on_every_other(cluster, lite_db, binary):
    nodes = cluster(3, args=lite_args(lite_db), binary=binary)
    a, b, c = (n.client() for n in nodes)
    filled, meta = run_query(a, source="lite", sql=AGG)
    assert meta[0]["cache"] == "miss" and meta[0]["node"] == "n0"
    key = meta[0]["key"]
    wait_for(lambda: stats(b)["entries"] == 1, what="the result to be published")
    for client in (b, c, a):
        got, m = run_query(client, source="lite", sql=AGG)
        assert m[0]["cache"] == "hit", m
        assert m[0]["node"] == "n0", "the hit names the node that computed it"
        assert got.equals(filled)
    per_node = [s["queries"] for s in nodes.stats()]
    assert sum(q["executions"] for q in per_node) == 1
    assert per_node[0]["executions_by_key"] == {key: 1}
    assert [q["hits"] for q in per_node] == [1, 1, 1]


@pytest.mark.parametrize("binary", SERVERS)
def test_objects_and_versions_are_one_across_nodes(cluster, binary):
    nodes = cluster(3, binary=binary)
    a, b, c = (n.client() for n in nodes)
    assert put(a, "s/o", ints(5))["version"] == 1
    assert get_table(c, "s/o").equals(ints(5))
    assert put(b, "s/o", ints(7), if_version=1)["version"] == 2
    with pytest.raises(pa.ArrowException, match="version conflict"):
        put(c, "s/o", ints(9), if_version=1)
    got, meta, _, _ = get(a, "s/o")
    assert meta["version"] == 2 and got.equals(ints(7))
    assert get_table(a, "s/o@1").equals(ints(5))
    assert {"/".join(p.decode() for p in i.descriptor.path) for i in c.list_flights(b"s")} == {"s/o"}
    assert action(c, "delete", {"key": "s/o"})["versions"] == 2
    for client in (a, b):
        with pytest.raises(KeyError):
            get(client, "s/o")
    assert put(b, "s/o", ints(1))["version"] == 1, "versions restart after a delete"


def test_a_compare_and_set_race_across_nodes_has_one_winner(cluster):
    nodes = cluster(3)
    barrier = threading.Barrier(12)
    won, lost, errors = [], [], []

    def writer(node, n):
        client = node.client()
        barrier.wait()
        try:
            won.append((n, put(client, "race/key", ints(10 + n), if_version=0)))
        except pa.ArrowException as e:
            (lost if "version conflict" in str(e) else errors).append(str(e))

    threads = [threading.Thread(target=writer, args=(nodes[n % 3], n)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(won) == 1 and len(lost) == 11
    n, ref = won[0]
    assert ref["version"] == 1
    assert get_table(nodes[(n + 1) % 3].client(), "race/key").equals(ints(10 + n))
    # The losers' data is gone; only the winner's blob and manifest remain.
    assert len(nodes.data_files()) == 1
    assert len(nodes.manifest_files()) == 1
    assert manifest_versions(nodes.data_dir, "race/key") == [1]


def test_invalidating_on_one_node_is_a_miss_on_another(cluster, lite_db):
    nodes = cluster(2, args=lite_args(lite_db))
    a, b = nodes[0].client(), nodes[1].client()
    _, meta = run_query(a, source="lite", sql=AGG)
    key = query_key(meta)
    wait_for(lambda: stats(a)["entries"] == 1, what="the result to be published")
    assert run_query(a, source="lite", sql=AGG)[1][0]["cache"] == "hit"
    # Derived results go with it, wherever they were put.
    put_with(a, "s/derived", ints(3), depends_on=[key])
    removed = action(b, "invalidate", {"key": key})["removed"]
    assert removed == sorted([key, "s/derived"])
    assert run_query(a, source="lite", sql=AGG)[1][0]["cache"] == "miss"
    with pytest.raises(KeyError):
        get(a, "s/derived")
    assert sum(s["queries"]["executions"] for s in nodes.stats()) == 2


def test_memory_copies_follow_removals_on_other_nodes(cluster):
    nodes = cluster(2, args=["--memory-size", "8MiB"])
    a, b = nodes[0].client(), nodes[1].client()
    put(b, "m/o", ints(100))
    for _ in range(2):
        get(a, "m/o")  # node 0 keeps a copy
    assert stats(a)["memory"]["entries"] == 1 and stats(a)["memory"]["hits"] == 1
    put(b, "m/o", ints(50))  # a new version: the old copy is not the latest
    assert get_table(a, "m/o").equals(ints(50))
    action(b, "delete", {"key": "m/o"})
    # Node 1's removal is announced: node 0 drops both copies without serving them.
    wait_for(lambda: stats(a)["memory"]["entries"] == 0, what="node 0 to drop its copies")
    with pytest.raises(KeyError):
        get(a, "m/o")


def test_the_budget_is_one_for_the_cluster(cluster):
    nodes = cluster(3, args=["--cache-size", "600KiB"])
    probe = nodes[0].client()
    put(probe, "probe/x", ints(10_000))
    size = stats(probe)["bytes"]  # one entry
    action(probe, "delete", {"key": "probe/x"})
    cache_size = 600 << 10
    errors, samples = [], []
    done = threading.Event()

    def sampler():
        sc = nodes[0].client()
        while not done.is_set():
            samples.append(stats(sc)["bytes"])
            time.sleep(0.005)

    def writer(t):
        client = nodes[t % 3].client()
        for j in range(10):
            try:
                put(client, f"b{t}/k{j}", ints(10_000, start=t * 1000 + j))
            except pa.ArrowException as e:
                errors.append(str(e))

    sample_thread = threading.Thread(target=sampler)
    sample_thread.start()
    workers = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.set()
    sample_thread.join()
    assert not errors, errors[:3]
    # The index's totals are global: no node published past them by more than one entry,
    # and what is stored now fits.
    assert max(samples) <= cache_size + size, (max(samples), cache_size, size)
    all_stats = nodes.stats()
    assert all_stats[0]["bytes"] <= cache_size
    assert all_stats[0]["entries"] == all_stats[0]["bytes"] // size
    assert sum(s["evictions"] for s in all_stats) == 60 - all_stats[0]["entries"]
    assert disk_bytes(nodes) == all_stats[0]["bytes"]


def test_stats_and_ls_show_the_cluster(cluster):
    nodes = cluster(2)
    put(nodes[0].client(), "ls/a", ints(3))
    put(nodes[1].client(), "ls/b", ints(4))
    s = stats(nodes[1].client())
    assert s["node"] == "n1"
    assert s["index"]["shared"] and s["index"]["state"] == "ok" and s["index"]["available"]
    assert s["index"]["kind"].startswith(nodes.redis.url) and "prefix c1" in s["index"]["kind"]
    out = subprocess.run([str(QUIVER_BIN), "ls", "--server", nodes[1].location, "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert sorted(e["key"] for e in json.loads(out)) == ["ls/a", "ls/b"]
    out = subprocess.run([str(QUIVER_BIN), "stats", "--server", nodes[0].location],
                         capture_output=True, text=True, check=True).stdout
    assert "n0" in out and "redis://" in out


def test_node_tickets_are_refused_unless_a_node_signed_them(cluster):
    nodes = cluster(2)
    forged = "quiver-node:" + json.dumps({"join": "0" * 64, "token": 1, "from": "n1",
                                          "mac": "00" * 32})
    with pytest.raises(pa.ArrowException, match="node ticket refused"):
        nodes[0].client().do_get(flight.Ticket(forged.encode())).read_all()


def test_nodes_can_share_redis_over_tls(quiver, redis_server, workdir):
    """rediss:// with the CA that signed the server's certificate (--index-ca)."""
    if not shutil.which("openssl"):
        pytest.skip("needs openssl")
    cert, key = self_signed_certificate(workdir)
    redis = redis_server(tls=(cert, key))
    url = redis.url
    assert url.startswith("rediss://")
    common = ["--index", url, "--index-ca", str(cert)]
    data = workdir / "tls-data"
    a = quiver(args=common + ["--node-id", "tls-a"], data_dir=data)
    b = quiver(args=common + ["--node-id", "tls-b"], data_dir=data)
    put(a.client(), "tls/o", ints(9))
    assert get_table(b.client(), "tls/o").equals(ints(9))
    assert stats(b.client())["index"]["kind"].startswith(url)
    # Without the CA the server's certificate is not trusted: the index is unavailable
    # (and the node says why), never silently insecure.
    c = quiver(args=["--index", url, "--node-id", "tls-c"], data_dir=data)
    with pytest.raises(flight.FlightUnavailableError, match="unavailable"):
        put(c.client(), "tls/p", ints(1))
    assert "certificate" in c.log()
