"""The SDK's client-side cache (quiver.ClientCache) and offline mode, on the real server."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pytest

from sdk_util import hung, sdk_env  # first: makes the SDK importable
import quiver
from quiver.client_cache import object_entry_id
from quiver_util import stats
from query_util import wait_for

JOB = Path(__file__).resolve().parent / "sdk_cache_job.py"


def job(*args):
    out = subprocess.run([sys.executable, str(JOB), *map(str, args)], check=True,
                         capture_output=True, text=True, env=sdk_env(), timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(n, base=0):
    return pa.table({"id": list(range(base, base + n)), "v": [f"v{i}" for i in range(n)]})


def test_revalidation_sends_no_data_when_unchanged(server, workdir):
    writer = quiver.connect(server.location)
    reader = quiver.connect(server.location, cache=quiver.ClientCache(disk_dir=workdir / "c"))
    ref = writer.put("s/obj", table(1000))

    first = reader.get_with_meta("s/obj")
    assert first.cache.source == "server" and first.cache.version == ref.version
    before = stats(server.client())
    second = reader.get_with_meta("s/obj")
    after = stats(server.client())
    assert second.cache.source == "revalidated" and not second.cache.stale
    assert second.value.equals(table(1000)) and second.ref == ref
    # One conditional get, answered "not modified": no data was sent.
    assert after["gets"] - before["gets"] == 1
    assert after["not_modified"] - before["not_modified"] == 1
    assert second.cache.validated_ms >= first.cache.validated_ms

    new_ref = writer.put("s/obj", table(10, base=5000))
    third = reader.get_with_meta("s/obj")
    assert third.cache.source == "server" and third.cache.version == new_ref.version
    assert third.value.equals(table(10, base=5000))
    assert reader.get("s/obj").equals(table(10, base=5000))  # plain get, same cache
    assert reader.cache.stats.revalidated == 2

    writer.delete("s/obj")
    with pytest.raises(quiver.NotFound):
        reader.get("s/obj")
    with pytest.raises(quiver.NotFound):  # the copy was dropped with the key
        quiver.connect(server.location, cache=reader.cache, offline=True).get("s/obj")
    writer.close()
    reader.close()


def test_server_gone_offline_serves_last_version_as_stale(server, workdir):
    cache = quiver.ClientCache(disk_dir=workdir / "c")
    client = quiver.connect(server.location, cache=cache, allow_stale=True, timeout=5)
    strict = quiver.connect(server.location, cache=cache, timeout=5)
    client.put("s/a", table(3))
    ref = client.put("s/a", table(4))
    fresh = client.get_with_meta("s/a")
    assert fresh.cache.source == "server"

    server.stop()
    stale = client.get_with_meta("s/a")
    assert stale.cache.source == "offline-stale" and stale.cache.stale
    assert stale.cache.version == ref.version == 2
    assert stale.cache.validated_ms == fresh.cache.validated_ms
    assert stale.value.equals(table(4))
    with pytest.raises(quiver.Unavailable):  # no allow_stale: the error, not the copy
        strict.get("s/a")
    with pytest.raises(quiver.Unavailable, match="not in the client cache"):
        client.get("s/never-read")

    offline = quiver.connect(server.location, cache=cache, offline=True)
    assert offline.get_with_meta("s/a").cache.source == "offline-stale"
    with pytest.raises(quiver.NotFound, match="offline"):
        offline.get("s/never-read")
    for c in (client, strict, offline):
        c.close()


def test_second_process_reads_first_process_entry(server, workdir):
    disk = workdir / "shared"
    writer = quiver.connect(server.location)
    ref = writer.put("s/shared", table(50))

    first = job("get", server.location, disk, "s/shared")
    assert first["meta"]["source"] == "server"
    before = stats(server.client())
    second = job("get", server.location, disk, "s/shared")
    after = stats(server.client())
    # The second process found the first one's copy on disk and the server confirmed it.
    assert second["meta"] == {**second["meta"], "source": "revalidated", "tier": "disk",
                              "version": ref.version}
    assert after["not_modified"] - before["not_modified"] == 1
    assert second["rows"] == table(50).to_pylist()

    server.stop()
    third = job("get", server.location, disk, "s/shared", "offline")
    assert third["meta"]["source"] == "offline-stale" and third["meta"]["tier"] == "disk"
    assert third["rows"] == table(50).to_pylist()
    writer.close()


def test_concurrent_writers_leave_no_corrupt_file(workdir):
    disk = workdir / "shared"
    procs = [subprocess.Popen([sys.executable, str(JOB), "churn", str(disk), w, "300"],
                              stdout=subprocess.PIPE, text=True, env=sdk_env())
             for w in ("a", "b")]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["torn"] == 0 and r["corrupt"] == 0 for r in results), results
    assert sum(r["reads"] for r in results) > 0
    cache = quiver.ClientCache(memory_bytes=0, disk_dir=disk)
    for k in ("k0", "k1", "k2", "k3"):
        entry = cache.lookup(k)
        assert entry is not None and entry.info["writer"] in ("a", "b")
    assert cache.disk.corrupt_removed == 0
    assert list((disk / "tmp").iterdir()) == []


def test_corrupt_file_is_removed_not_served(server, workdir):
    cache = quiver.ClientCache(memory_bytes=0, disk_dir=workdir / "c")
    client = quiver.connect(server.location, cache=cache)
    client.put("s/c", table(100))
    client.get("s/c")
    [path] = (workdir / "c" / "entries").iterdir()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    result = client.get_with_meta("s/c")
    assert result.cache.source == "server" and result.value.equals(table(100))
    assert cache.disk.corrupt_removed == 1
    path.write_bytes(path.read_bytes()[:100])  # truncated, as by a crash
    offline = quiver.connect(server.location, cache=cache, offline=True)
    with pytest.raises(quiver.NotFound):
        offline.get("s/c")
    assert not path.exists()
    client.close()


def test_disk_bound_evicts_least_recently_used(server, workdir):
    bound = 1 << 20
    cache = quiver.ClientCache(memory_bytes=0, disk_dir=workdir / "c", disk_bytes=bound)
    client = quiver.connect(server.location, cache=cache)
    for i in range(12):  # ~200 KB each
        client.put(f"s/o{i}", table(10000, base=i))
    client.get("s/o0")
    for i in range(1, 12):
        client.get(f"s/o{i}")
        client.get("s/o0")  # keep o0 the most recently used
        # The running counter itself (usage() would rescan and hide any drift).
        assert cache.disk.recorded_usage() == entries_bytes(workdir / "c") <= bound
    offline = quiver.connect(server.location, cache=cache, offline=True)
    assert offline.get("s/o0").equals(table(10000, base=0))
    assert offline.get("s/o11").equals(table(10000, base=11))
    with pytest.raises(quiver.NotFound):
        offline.get("s/o1")  # least recently used: evicted
    client.close()


def entries_bytes(disk):
    return sum(p.stat().st_size for p in (disk / "entries").iterdir())


def test_usage_counter_stays_exact_when_its_file_is_missing(server, workdir):
    disk = workdir / "c"
    cache = quiver.ClientCache(memory_bytes=0, disk_dir=disk)
    client = quiver.connect(server.location, cache=cache)
    client.put("u/a", table(100))
    client.put("u/b", table(200))
    client.get("u/a")
    (disk / "usage").unlink()
    client.get("u/b")  # the store rebuilds the counter by a scan, then adds its file once
    assert cache.disk.recorded_usage() == entries_bytes(disk)
    (disk / "usage").unlink()
    client.delete("u/b")  # drops this client's copy: the scan still sees the file it removes
    assert len(list((disk / "entries").iterdir())) == 1
    assert cache.disk.recorded_usage() == entries_bytes(disk)
    client.close()


def test_a_hung_server_times_out_and_allow_stale_serves_the_copy(demo_server, workdir):
    cache = quiver.ClientCache(disk_dir=workdir / "c")
    strict = quiver.connect(demo_server.location, cache=cache, timeout=60)
    lenient = quiver.connect(demo_server.location, cache=cache, allow_stale=True, timeout=60)
    strict.put("h/a", table(5))
    assert strict.get_with_meta("h/a").cache.source == "server"
    sql = "SELECT country, count(*) AS n FROM events GROUP BY country ORDER BY country"
    expected = strict.query(sql, source="demo").read_all()
    with hung(demo_server):
        started = time.monotonic()
        with pytest.raises(quiver.Timeout):
            strict.get("h/a", timeout=1)  # the call's timeout, not the client's 60 s
        assert time.monotonic() - started < 10
        stale = lenient.get_with_meta("h/a", timeout=1)
        assert stale.cache.source == "offline-stale" and stale.value.equals(table(5))
        with pytest.raises(quiver.Timeout, match="not in the client cache"):
            lenient.get("h/never", timeout=1)
        result = lenient.query(sql, source="demo", timeout=1)
        assert result.cache.source == "offline-stale" and result.read_all().equals(expected)
        assert time.monotonic() - started < 20
    assert strict.get_with_meta("h/a").cache.source == "revalidated"
    strict.close()
    lenient.close()


HOLD_LOCK = ("import fcntl, os, sys, time\n"
             "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT)\n"
             "fcntl.flock(fd, fcntl.LOCK_EX)\n"
             "print('locked', flush=True)\n"
             "time.sleep(120)\n")


def test_a_held_cache_lock_delays_a_get_no_longer_than_its_timeout(server, workdir):
    disk = workdir / "c"
    cache = quiver.ClientCache(memory_bytes=0, disk_dir=disk)
    client = quiver.connect(server.location, cache=cache)
    client.put("l/a", table(10))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(disk / "lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        got = client.get_with_meta("l/a", timeout=2)
        assert time.monotonic() - started < 3.5
        assert got.cache.source == "server" and got.value.equals(table(10))
        assert cache.disk.lock_timeouts == 1  # the store was skipped, not waited for
    finally:
        holder.kill()
        holder.wait()
    assert client.get_with_meta("l/a").cache.source == "server"  # stored this time
    offline = quiver.connect(server.location, cache=cache, offline=True)
    assert offline.get("l/a").equals(table(10))
    client.close()


def test_a_directory_shared_with_another_user(server):
    """Files of another user (root's, read by `nobody`): access times cannot be updated, the
    lock cannot be opened for writing, an unreadable file is a miss; every get still
    returns, and the other user's stores land in the shared directory."""
    if os.getuid() != 0:
        pytest.skip("runs a process as user nobody: needs root")
    shared = Path(tempfile.mkdtemp(prefix="quiver-shared-cache-"))
    try:
        os.chmod(shared, 0o777)
        cache = quiver.ClientCache(memory_bytes=0, disk_dir=shared)
        client = quiver.connect(server.location, cache=cache)
        for key, n in (("sh/a", 3), ("sh/b", 4), ("sh/c", 5)):
            client.put(key, table(n))
        client.get("sh/a")
        client.get("sh/c")
        os.chmod(cache.disk.path(object_entry_id(client.endpoint, None, "sh/c", None)), 0o600)

        out = job("as-nobody", server.location, shared, "sh/a", "sh/b", "sh/c")
        assert out["uid"] == 65534
        assert out["sources"] == {"sh/a": "revalidated", "sh/b": "server", "sh/c": "server"}
        assert out["io_errors"] == 1  # sh/c's unreadable file: read as a miss
        offline = quiver.connect(server.location, offline=True,
                                 cache=quiver.ClientCache(memory_bytes=0, disk_dir=shared))
        assert offline.get("sh/b").equals(table(4))  # stored by nobody
        assert offline.get("sh/c").equals(table(5))  # replaced by nobody's copy
        assert cache.disk.recorded_usage() == entries_bytes(shared)
        client.close()
    finally:
        shutil.rmtree(shared)


def test_clients_with_different_tokens_share_no_copies(server, workdir):
    cache = quiver.ClientCache(disk_dir=workdir / "c")
    alpha = quiver.connect(server.location, token="alpha-secret-token", cache=cache)
    beta = quiver.connect(server.location, token="beta-secret-token", cache=cache)
    alpha_again = quiver.connect(server.location, token="alpha-secret-token", cache=cache)
    alpha.put("t/x", table(3))
    assert alpha.get_with_meta("t/x").cache.source == "server"
    assert beta.get_with_meta("t/x").cache.source == "server"  # not alpha's copy
    assert alpha_again.get_with_meta("t/x").cache.source == "revalidated"
    for path in (workdir / "c").rglob("*"):
        if path.is_file():
            assert b"secret-token" not in path.read_bytes(), path
    for c in (alpha, beta, alpha_again):
        c.close()


def test_a_version_is_served_from_the_latest_copy(server, workdir):
    cache = quiver.ClientCache(disk_dir=workdir / "c")
    client = quiver.connect(server.location, cache=cache)
    ref = client.put("v/x", table(6))
    client.get("v/x")  # only the latest copy is cached
    offline = quiver.connect(server.location, cache=cache, offline=True)
    assert offline.get(ref).equals(table(6))
    assert offline.get_with_meta("v/x", version=ref.version).cache.version == ref.version
    with pytest.raises(quiver.NotFound):
        offline.get("v/x", version=ref.version + 1)
    assert client.get_with_meta(ref).cache.source == "revalidated"  # no data sent
    client.close()


@pytest.fixture
def demo_server(quiver, workdir):
    db = workdir / "demo.db"
    subprocess.run([sys.executable, str(Path(__file__).resolve().parent.parent / "scripts" /
                                        "make_demo_db.py"), str(db), "--rows", "2000"],
                   check=True, stdout=subprocess.DEVNULL)
    return quiver(args=["--source", f"demo=sqlite://{db}"])


def query_stats(server):
    return stats(server.client())["queries"]


def test_query_results_are_served_until_they_expire(demo_server, workdir):
    cache = quiver.ClientCache(disk_dir=workdir / "c", query_fresh_s=60)
    client = quiver.connect(demo_server.location, cache=cache, allow_stale=True)
    sql = "SELECT country, count(*) AS n FROM events GROUP BY country ORDER BY country"

    first = client.query(sql, source="demo", ttl=2)
    expected = first.read_all()
    assert first.cache.source == "server" and first.meta.miss
    assert first.cache.expires_ms > time.time() * 1000
    before = query_stats(demo_server)
    again = client.query(sql, source="demo", ttl=2)
    assert again.cache.source == "cache" and not again.cache.stale
    assert again.read_all().equals(expected) and again.meta.key == first.meta.key
    assert query_stats(demo_server) == before  # no round trip

    preview = client.query(sql, source="demo", preview=True)
    assert preview.cache is None and preview.meta.cache == "bypass"
    preview.read_all()

    while time.time() * 1000 < first.cache.expires_ms:
        time.sleep(0.05)
    expired = client.query(sql, source="demo", ttl=2)
    assert expired.cache.source == "server" and expired.read_all().equals(expected)

    demo_server.stop()
    assert client.query(sql, source="demo", ttl=2).cache.source == "cache"  # still fresh
    while time.time() * 1000 < expired.cache.expires_ms:
        time.sleep(0.05)
    stale = client.query(sql, source="demo", ttl=2)
    assert stale.cache.source == "offline-stale" and stale.cache.stale
    assert stale.read_all().equals(expected)
    with pytest.raises(quiver.Unavailable):
        quiver.connect(demo_server.location, cache=cache).query(sql, source="demo", ttl=2)
    client.close()


COUNT = "SELECT count(*) AS n FROM events"


def add_event(workdir):
    con = sqlite3.connect(workdir / "demo.db")
    con.execute("INSERT INTO events (ts, user_id, country, event_type, amount, duration_ms) "
                "VALUES (0, 0, 'NO', 'view', 0, 0)")
    con.commit()
    con.close()


def count(result):
    return result.read_all().column("n")[0].as_py()


def test_a_query_copy_is_checked_with_the_server(demo_server, workdir):
    reader = quiver.connect(demo_server.location,
                            cache=quiver.ClientCache(disk_dir=workdir / "c"))
    other = quiver.connect(demo_server.location)
    first = reader.query(COUNT, source="demo", tags=["table:events"])
    n = count(first)
    wait_for(lambda: reader.stats()["entries"] == 1, what="the result to be stored")
    before = query_stats(demo_server)
    again = reader.query(COUNT, source="demo", tags=["table:events"])
    assert again.cache.source == "revalidated" and count(again) == n
    assert again.meta.hit and again.meta.key == first.meta.key
    assert query_stats(demo_server)["executions"] == before["executions"]

    add_event(workdir)
    assert other.invalidate_tag("table:events").keys == (f"@q/{first.meta.key}",)
    changed = reader.query(COUNT, source="demo", tags=["table:events"])
    assert changed.cache.source == "server" and count(changed) == n + 1
    reader.close()
    other.close()


def test_own_invalidation_ends_a_query_copy_s_freshness(demo_server, workdir):
    cache = quiver.ClientCache(disk_dir=workdir / "c", query_fresh_s=60)
    client = quiver.connect(demo_server.location, cache=cache)
    n = count(client.query(COUNT, source="demo", tags=["table:events"]))
    assert client.query(COUNT, source="demo", tags=["table:events"]).cache.source == "cache"
    add_event(workdir)
    wait_for(lambda: client.stats()["entries"] == 1, what="the result to be stored")
    client.invalidate_tag("table:events")
    changed = client.query(COUNT, source="demo", tags=["table:events"])
    assert changed.cache.source == "server" and count(changed) == n + 1
    # Another process on the same directory sees the invalidation too (DIR/invalidated/).
    other = quiver.connect(demo_server.location,
                           cache=quiver.ClientCache(disk_dir=workdir / "c", query_fresh_s=60))
    assert other.query(COUNT, source="demo", tags=["table:events"]).cache.source == "cache"
    client.close()
    other.close()


def test_async_client_reads_through_the_cache(server, workdir):
    import asyncio
    import quiver.aio

    quiver.connect(server.location).put("s/async", table(7))

    async def main():
        async with quiver.aio.connect(server.location,
                                      cache=quiver.ClientCache(disk_dir=workdir / "c")) as q:
            first = await q.get_with_meta("s/async")
            second = await q.get_with_meta("s/async")
            plain = await q.get("s/async")
            return first, second, plain

    first, second, plain = asyncio.run(main())
    assert first.cache.source == "server" and second.cache.source == "revalidated"
    assert plain.equals(table(7))
