"""Freshness of query results with the real binary and a real SQLite source:
stale-while-revalidate (serve an expired result at once while one refresh runs) and XFetch
early refresh (refresh a hot result before it expires)."""

import json
import sqlite3
import threading
import time

import pyarrow as pa
import pytest

from cluster_util import redis_binaries
from quiver_util import write_config
from query_util import run_query, stats, wait_for

# A query that takes a noticeable time (~0.1-0.3 s) and always gives the same rows.
SLOW = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) "
        "SELECT count(*) AS c, sum(i) AS s FROM n")


@pytest.fixture
def lite_db(workdir):
    path = workdir / "fresh.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE prices (item TEXT, price INTEGER)")
    con.execute("INSERT INTO prices VALUES ('a', 1), ('b', 2)")
    con.commit()
    con.close()
    return path


def serve(quiver, workdir, lite_db, **source):
    """A server whose source `lite` has the given freshness options (TTL 1 s by default)."""
    spec = {"driver": "sqlite", "uri": str(lite_db), "ttl_s": 1, **source}
    config = write_config(workdir, "fresh.json", {"sources": {"lite": spec}})
    return quiver(args=["--config", str(config)])


def ask(client, sql=SLOW, **request):
    table, metas = run_query(client, source="lite", sql=sql, **request)
    return table, metas[0]


def wait_expired(meta):
    """Wait for the result's expiry to pass on the server's clock (the same machine's)."""
    wait_for(lambda: time.time() * 1000 >= meta["expires_ms"] + 10, timeout=30,
             what="the result to expire")


def wait_committed(client, executions):
    wait_for(lambda: stats(client)["queries"]["executions"] >= executions and
             stats(client)["entries"] >= 1, timeout=30, what=f"{executions} executions")


def test_stale_served_at_once_while_one_refresh_runs(quiver, workdir, lite_db):
    # TTL 3 s: the refreshed result stays fresh while the test looks at it, even on a busy
    # machine (a second expiry would start a second refresh).
    srv = serve(quiver, workdir, lite_db, ttl_s=3, stale_while_revalidate_s=60,
                early_refresh_beta=0)
    c = srv.client()
    first, hit = ask(c)  # a miss: its metadata has the created_ms the entry will have
    assert hit["cache"] == "miss" and hit["stale"] is False
    wait_committed(c, 1)
    wait_expired(hit)

    # Many concurrent readers of the expired result: all served at once from the store.
    metas, errors = [], []
    clients = [srv.client() for _ in range(12)]
    start = threading.Barrier(len(clients))

    def read(client):
        try:
            start.wait()
            table, meta = ask(client)
            assert table.equals(first)
            metas.append(meta)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=read, args=(cl,)) for cl in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(m["cache"] == "hit" for m in metas), metas
    stale = [m for m in metas if m["stale"]]
    assert stale, "no request saw the stale result"
    for m in stale:
        assert m["refreshing"] is True and m["created_ms"] == hit["created_ms"]
        assert m["expires_ms"] <= time.time() * 1000

    # The refresh publishes; later requests get the new result (until then, the stale one).
    def refreshed():
        meta = ask(c)[1]
        if meta["created_ms"] != hit["created_ms"]:
            return meta
        assert meta["stale"] and meta["refreshing"], meta
        stale.append(meta)
        return None

    fresh = wait_for(refreshed, timeout=30, what="the refreshed result")
    assert fresh["cache"] == "hit" and fresh["stale"] is False
    assert fresh["created_ms"] > hit["created_ms"]
    q = stats(c)["queries"]
    assert q["refreshes"] == 1, q
    assert q["executions"] == 2, "the stale readers started more than one refresh"
    assert q["stale_hits"] == len(stale)
    assert q["misses"] == 1


def test_failed_refresh_keeps_the_stale_result(quiver, workdir, lite_db):
    srv = serve(quiver, workdir, lite_db, stale_while_revalidate_s=60, early_refresh_beta=0)
    c = srv.client()
    sql = "SELECT item, price FROM prices ORDER BY item"
    first, hit = ask(c, sql=sql)
    wait_committed(c, 1)
    con = sqlite3.connect(lite_db)
    con.execute("ALTER TABLE prices RENAME TO gone")  # every execution fails from now on
    con.commit()
    wait_expired(hit)
    table, stale = ask(c, sql=sql)
    assert stale["stale"] is True and table.equals(first)
    wait_for(lambda: stats(c)["queries"]["failures"] >= 1, timeout=30, what="the refresh to fail")
    srv.wait_for_log("background refresh failed")
    table, again = ask(c, sql=sql)
    assert again["cache"] == "hit" and again["stale"] is True, again
    assert again["created_ms"] == hit["created_ms"] and table.equals(first)
    # A request that accepts no staleness misses, and gets the database's error.
    with pytest.raises(pa.ArrowException, match="prices"):
        ask(c, sql=sql, stale_while_revalidate_s=0)
    con.execute("ALTER TABLE gone RENAME TO prices")
    con.commit()
    con.close()
    # Once the database is back, a stale read's refresh succeeds.
    fresh = wait_for(lambda: (lambda m: m if not m["stale"] else None)(ask(c, sql=sql)[1]),
                     timeout=30, what="a successful refresh")
    assert fresh["created_ms"] > hit["created_ms"]


def test_without_a_window_an_expired_result_is_a_miss(quiver, workdir, lite_db):
    srv = serve(quiver, workdir, lite_db, early_refresh_beta=0)
    c = srv.client()
    _, first = ask(c)
    wait_committed(c, 1)
    wait_expired(first)
    _, late = ask(c)
    assert late["cache"] == "miss" and late["stale"] is False and late["joined"] is False
    # The source allows no window, so a request cannot raise it either (the cap is 0).
    hit = wait_for(lambda: (lambda m: m if m["cache"] == "hit" else None)(ask(c)[1]),
                   timeout=30, what="the refill")
    wait_expired(hit)
    _, capped = ask(c, stale_while_revalidate_s=30)
    assert capped["cache"] == "miss"


def test_early_refresh_renews_a_hot_result_before_it_expires(quiver, workdir, lite_db):
    # beta 50 with a ~0.1-0.3 s query and a 3 s TTL: refreshes well before expiry.
    srv = serve(quiver, workdir, lite_db, ttl_s=3, early_refresh_beta=50)
    c = srv.client()
    ask(c)
    wait_committed(c, 1)
    _, hit = ask(c)
    assert hit["exec_ms"] > 0
    refreshed = wait_for(lambda: (lambda m: m if m["created_ms"] != hit["created_ms"] else None)(
        ask(c)[1]), timeout=30, what="an early refresh")
    # Every request was a fresh hit: the hot key never expired in front of its readers.
    q = stats(c)["queries"]
    assert q["misses"] == 1 and q["stale_hits"] == 0
    assert q["early_refreshes"] >= 1 and q["refreshes"] == q["early_refreshes"]
    assert refreshed["stale"] is False
    assert refreshed["created_ms"] < hit["expires_ms"], "refreshed only after expiry"


def test_bad_freshness_settings_are_refused(quiver, workdir, lite_db):
    srv = serve(quiver, workdir, lite_db, stale_while_revalidate_s=5)
    c = srv.client()
    with pytest.raises(pa.ArrowInvalid, match="stale_while_revalidate_s"):
        ask(c, stale_while_revalidate_s=-1)
    with pytest.raises(pa.ArrowInvalid, match="stale_while_revalidate_s"):
        ask(c, stale_while_revalidate_s="soon")
    bad = write_config(workdir, "bad.json", {"sources": {"lite": {
        "driver": "sqlite", "uri": str(lite_db), "early_refresh_beta": -1}}})
    broken = quiver(args=["--config", str(bad)], start=False)
    with pytest.raises(AssertionError, match="early_refresh_beta"):
        broken.start()


def test_one_refresh_in_a_cluster(cluster, workdir, lite_db):
    """Stale readers on two nodes sharing a Redis index: one refresh in the whole cluster
    (the key's fill lease), then both nodes serve its result."""
    if not redis_binaries():
        pytest.skip("no redis-server installed")
    spec = {"driver": "sqlite", "uri": str(lite_db), "ttl_s": 3,
            "stale_while_revalidate_s": 60, "early_refresh_beta": 0}
    config = write_config(workdir, "cluster.json", {"sources": {"lite": spec}})
    nodes = cluster(n=2, args=["--config", str(config)])
    clients = [nodes[i % 2].client() for i in range(12)]
    first, hit = ask(clients[0])
    wait_for(lambda: stats(clients[1])["entries"] >= 1, timeout=30, what="the first result")
    wait_expired(hit)
    metas, errors = [], []
    start = threading.Barrier(len(clients))

    def read(client):
        try:
            start.wait()
            table, meta = ask(client)
            assert table.equals(first)
            metas.append(meta)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=read, args=(cl,)) for cl in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(m["cache"] == "hit" for m in metas), metas
    for c in clients[:2]:  # both nodes get the refreshed result
        wait_for(lambda: ask(c)[1]["created_ms"] != hit["created_ms"], timeout=30,
                 what="the refreshed result")
    per_node = [stats(c)["queries"] for c in clients[:2]]
    assert sum(q["refreshes"] for q in per_node) == 1, per_node
    assert sum(q["executions"] for q in per_node) == 2, per_node


def test_the_python_sdk_reports_a_stale_hit(quiver, workdir, lite_db):
    import quiver as sdk
    srv = serve(quiver, workdir, lite_db, ttl_s=2, stale_while_revalidate_s=60,
                early_refresh_beta=0)
    with sdk.connect(srv.location) as q:
        first = q.query(SLOW, source="lite")
        first.read_all()
        assert first.meta.miss and not first.meta.stale
        wait_committed(srv.client(), 1)
        wait_expired({"expires_ms": first.meta.raw["expires_ms"]})
        stale = q.query(SLOW, source="lite")
        stale.read_all()
        assert stale.meta.hit and stale.meta.stale and stale.meta.refreshing, stale.meta.raw
        assert stale.meta.created == first.meta.created
