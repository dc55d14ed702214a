"""The disk budget against the real server: eviction by policy (cost, LRU), admission,
protection, max_entries, new versions of one key, and shrink (docs/management.md)."""

import json
import os
import threading
import time

import pyarrow as pa
import pytest

from management_util import (assert_missing, disk_bytes, entries, entry_map, expected_victims,
                             ints, keys, keys_before_minus, lite_args, lowest_scored, query_key,
                             read, rejection, server_error, slow_sql, stored_size,
                             wait_entry)
from management_util import lite_db  # noqa: F401  (fixture)
from quiver_util import action, put, stats, write_config
from query_util import run_query, wait_for

# -- the disk budget ---------------------------------------------------------------------------


class BlobWatch:
    """Counts the committed data blobs exactly, from inotify events, while the server runs.

    A blob is committed by a rename into data/<xx>/ and removed by an unlink; sampling the
    directory tree instead is not atomic (it can see an old file and a newer one that never
    coexisted). All 256 shard directories are created before the server starts, each holding
    an empty ".keep" directory so that the server's clean-up of emptied directories cannot
    remove them (and with them the watches). Tracks the most blobs that existed at once.
    """

    IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
    IN_Q_OVERFLOW = 0x4000

    def __init__(self, data_dir):
        import ctypes
        import select

        self._select = select
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self._fd >= 0, os.strerror(ctypes.get_errno())
        mask = self.IN_MOVED_FROM | self.IN_MOVED_TO | self.IN_CREATE | self.IN_DELETE
        root = data_dir / "data"
        for i in range(256):
            shard = root / f"{i:02x}"
            (shard / ".keep").mkdir(parents=True, exist_ok=True)
            wd = self._libc.inotify_add_watch(self._fd, str(shard).encode(), mask)
            assert wd >= 0, os.strerror(ctypes.get_errno())
        self.present = set()
        self.max_present = 0
        self.overflowed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _drain(self):
        import struct

        while True:
            try:
                buf = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            pos = 0
            while pos < len(buf):
                wd, mask, _cookie, length = struct.unpack_from("iIII", buf, pos)
                name = buf[pos + 16:pos + 16 + length].rstrip(b"\0").decode()
                pos += 16 + length
                if mask & self.IN_Q_OVERFLOW:
                    self.overflowed = True
                if not name.endswith(".arrows"):
                    continue
                ident = (wd, name)
                if mask & (self.IN_MOVED_TO | self.IN_CREATE):
                    self.present.add(ident)
                    self.max_present = max(self.max_present, len(self.present))
                elif mask & (self.IN_MOVED_FROM | self.IN_DELETE):
                    self.present.discard(ident)

    def _run(self):
        while not self._stop.is_set():
            self._select.select([self._fd], [], [], 0.05)
            self._drain()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._drain()
        os.close(self._fd)


@pytest.mark.local_store_only("counts committed blobs from inotify events on data/xx/; an S3 "
                              "bucket has no file events")
def test_concurrent_puts_never_exceed_the_budget(quiver):
    n_rows, threads, per_thread = 10_000, 8, 12
    size = stored_size(n_rows)
    cache_size = 1 << 20
    fits = cache_size // size  # 13 entries
    srv = quiver(args=["--cache-size", str(cache_size)], start=False)
    watch = BlobWatch(srv.data_dir)
    try:
        srv.start()
        c = srv.client()
        done = threading.Event()
        errors, used_samples, disk_samples = [], [], []

        def sampler():
            try:
                sc = srv.client()
                while not done.is_set():
                    used_samples.append(stats(sc)["budget"]["used"])
                    disk_samples.append(len(watch.present) * size)
                    time.sleep(0.002)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(f"sampler: {e!r}")

        def writer(t):
            wc = srv.client()
            for j in range(per_thread):
                try:
                    put(wc, f"t{t}/k{j}", ints(n_rows, start=1000 * t + j))
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(f"t{t}/k{j}: {e}")

        sample_thread = threading.Thread(target=sampler)
        sample_thread.start()
        workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)
        done.set()
        sample_thread.join(timeout=10)
    finally:
        watch.close()
    assert not any(w.is_alive() for w in workers), "puts hung"
    assert not errors, errors[:5]
    assert not watch.overflowed, "inotify queue overflowed; the count is not exact"
    assert len(used_samples) >= 5, "the sampler did not run during the puts"

    # The budget's own accounting never goes over, but for the one entry a writer that keeps
    # losing the room it made to the others may publish past the limits before it evicts
    # back under them (docs/management.md).
    one_over = 1
    assert max(used_samples) <= cache_size + one_over * size, (max(used_samples), cache_size)
    # On disk, each put in flight may add the one entry it is admitting (its blob is
    # committed before it reserves room), and each evicting put the victim it is removing:
    # the index drops a victim before its file is unlinked, and another writer may publish
    # into that room in between (seen under CPU load: 22 files for 13 + 8). So never more
    # blobs at once than fit in the budget, plus that one entry past the limits, plus two
    # per concurrent put.
    assert watch.max_present <= fits + one_over + 2 * threads, (
        f"{watch.max_present} blobs of {size} bytes existed at once; the budget holds "
        f"{fits}, with {threads} puts in flight")
    assert max(disk_samples) <= cache_size + (2 * threads + one_over) * size

    s = stats(c)
    final_disk = disk_bytes(srv)
    assert len(watch.present) == len(srv.data_files()), "the inotify count drifted"
    assert final_disk <= cache_size
    assert final_disk == s["budget"]["used"] == s["bytes"]
    assert s["entries"] == final_disk // size and s["entries"] >= 1
    assert s["puts"] == threads * per_thread
    assert s["evictions"] == threads * per_thread - s["entries"]
    assert s["not_admitted"] == 0
    assert not srv.tmp_files()
    # Whatever survived is intact.
    for key in keys(c):
        t, j = (int(part[1:]) for part in key.split("/"))
        got = read(c, key)
        assert got.num_rows == n_rows and got.column("x")[0].as_py() == 1000 * t + j


def test_lru_reading_keeps_an_entry(quiver):
    size = stored_size(10_000)
    cache_size = 3 * size + size // 2  # three fit, four do not
    srv = quiver(args=["--cache-size", str(cache_size), "--eviction-policy", "lru"])
    c = srv.client()
    for k in "abc":
        put(c, f"l/{k}", ints(10_000))
    read(c, "l/a")  # a is now the most recently used; b the least
    # In a cluster a node sends its reads to the shared index in batches: wait for this one.
    wait_for(lambda: entry_map(c)["l/a"]["score"] > entry_map(c)["l/c"]["score"],
             what="the read of l/a to reach the index")
    assert lowest_scored(c) == "l/b"
    put(c, "l/d", ints(10_000))
    assert keys(c) == ["l/a", "l/c", "l/d"]
    assert stats(c)["evictions"] == 1

    read(c, "l/c")  # now a is the least recently used
    wait_for(lambda: entry_map(c)["l/c"]["score"] > entry_map(c)["l/d"]["score"],
             what="the read of l/c to reach the index")
    rows = entry_map(c)
    assert rows["l/a"]["score"] < rows["l/d"]["score"] < rows["l/c"]["score"]
    put(c, "l/e", ints(10_000))
    assert keys(c) == ["l/c", "l/d", "l/e"]
    s = stats(c)
    assert s["evictions"] == 2 and s["budget"]["policy"] == "lru"
    assert s["budget"]["used"] == 3 * size <= cache_size


@pytest.mark.parametrize("policy", ["cost", "lru"])
def test_eviction_follows_the_policy(quiver, lite_db, policy):
    """Q: an expensive query result (tiny); R: a small entry read often; B: a cheap large
    entry, written last. Admitting N evicts the lowest-scored entries. Under cost that is B
    (Q and R outlive it by orders of magnitude of cost / size and hits); under LRU it is Q
    then B, the least recently used, while the read R stays."""
    cache_size = 300 * 1024
    srv = quiver(args=[*lite_args(lite_db), "--cache-size", str(cache_size),
                       "--eviction-policy", policy])
    c = srv.client()
    table, meta = run_query(c, source="lite", sql=slow_sql(2_000_000))
    assert table.column("c").to_pylist() == [2_000_000]
    q = query_key(meta)
    wait_entry(c, q)
    put(c, "p/R", ints(3_000))  # ~24 KB
    put(c, "p/B", ints(25_000))  # ~200 KB
    for _ in range(100):
        read(c, "p/R")

    rows = entry_map(c)
    assert sorted(rows) == [q, "p/B", "p/R"]
    assert rows["p/R"]["accesses"] == 101 and rows["p/B"]["accesses"] == 1
    assert rows[q]["cost_s"] >= 0.05, rows[q]
    order = sorted(rows, key=lambda k: rows[k]["score"])
    scores = {k: r["score"] for k, r in rows.items()}
    if policy == "cost":
        assert order[0] == "p/B", scores
    else:
        assert order == [q, "p/B", "p/R"], scores
    incoming = stored_size(12_500)  # ~100 KB: needs ~18 KB more room
    victims = expected_victims(list(rows.values()), incoming, cache_size)
    assert victims == (["p/B"] if policy == "cost" else [q, "p/B"]), victims

    evictions = stats(c)["evictions"]
    put(c, "p/N", ints(12_500))
    after = entry_map(c)
    assert sorted(set(rows) - set(after)) == sorted(victims), (
        f"evicted {sorted(set(rows) - set(after))}, the lowest-scored were {victims}")
    assert sorted(after) == sorted({*rows, "p/N"} - set(victims))
    assert stats(c)["evictions"] == evictions + len(victims)
    assert stats(c)["budget"]["used"] <= cache_size
    if policy == "lru":
        # the evicted query result is a miss again
        assert run_query(c, source="lite", sql=slow_sql(2_000_000))[1][0]["cache"] == "miss"


def test_entry_larger_than_the_budget_is_not_admitted(quiver, lite_db):
    cache_size = 256 * 1024
    srv = quiver(args=[*lite_args(lite_db), "--cache-size", str(cache_size)])
    c = srv.client()
    put(c, "n/a", ints(10_000))
    put(c, "n/b", ints(10_000))
    files = srv.data_files()
    before = entry_map(c)

    msg, body = rejection(put, c, "n/huge", ints(40_000))  # 320 KB > 256 KiB
    assert body == {"error": "too_large", "setting": "cache_size", "limit": cache_size}, body
    assert "not admitted" in msg and "n/huge" in msg and "larger than cache_size" in msg, msg
    assert "256.0 KiB" in msg, msg
    s = stats(c)
    assert s["not_admitted"] == 1 and s["evictions"] == 0
    assert entry_map(c) == before, "a refused entry evicted something"
    assert srv.data_files() == files and not srv.tmp_files()
    assert_missing(c, "n/huge")

    # A query result larger than the budget streams in full but is not stored.
    sql = slow_sql(100_000, select="i, i * 2 AS j")
    table, meta = run_query(c, source="lite", sql=sql)
    assert table.num_rows == 100_000 and table.column("j")[-1].as_py() == 200_000
    assert meta[0]["cache"] == "miss"
    wait_for(lambda: stats(c)["queries"]["not_cached"] == 1, what="the fill to give up")
    s = stats(c)
    assert s["not_admitted"] == 2 and s["evictions"] == 0
    assert entry_map(c) == before and srv.data_files() == files and not srv.tmp_files()
    assert run_query(c, source="lite", sql=sql)[1][0]["cache"] == "miss"


def test_protected_entries_are_not_evicted(quiver, workdir):
    size = stored_size(10_000)
    config = write_config(workdir, "protect.json",
                          {"cache_size": 2 * size + size // 2, "protect_s": 1.5})
    srv = quiver(args=["--config", str(config)])
    c = srv.client()
    assert stats(c)["budget"]["protect_s"] == 1.5
    put(c, "pr/a", ints(10_000))
    put(c, "pr/b", ints(10_000))
    written = time.monotonic()
    msg, body = rejection(put, c, "pr/c", ints(10_000))
    assert "not admitted" in msg and "protected" in msg, msg
    assert body == {"error": "not_admitted"}, body
    assert keys(c) == ["pr/a", "pr/b"] and stats(c)["evictions"] == 0
    assert stats(c)["not_admitted"] == 1 and not srv.tmp_files()
    assert action(c, "shrink", {"one": True})["removed"] == []
    assert action(c, "shrink", {"below_bytes": 0})["removed"] == []
    assert keys(c) == ["pr/a", "pr/b"]
    time.sleep(max(0.0, 1.5 - (time.monotonic() - written)) + 0.2)
    lowest = lowest_scored(c)
    put(c, "pr/c", ints(10_000))
    assert keys(c) == sorted({"pr/a", "pr/b", "pr/c"} - {lowest})


def test_max_entries_limits_the_number_of_keys(quiver, workdir):
    config = write_config(workdir, "max.json", {"max_entries": 3})
    srv = quiver(args=["--config", str(config)])
    c = srv.client()
    assert stats(c)["budget"]["max_entries"] == 3
    for k in "abc":
        put(c, f"me/{k}", ints(10))
    # A new version of a key already stored adds no key: nothing is evicted.
    put(c, "me/a", ints(11))
    assert keys(c) == ["me/a", "me/b", "me/c"], "a new version of a stored key evicted a key"
    assert stats(c)["evictions"] == 0
    lowest = lowest_scored(c)
    put(c, "me/d", ints(10))
    assert keys(c) == sorted({"me/a", "me/b", "me/c", "me/d"} - {lowest})
    assert stats(c)["evictions"] == 1


def test_a_lower_max_entries_applies_at_startup(quiver, workdir):
    config = write_config(workdir, "max.json", {"max_entries": 10})
    srv = quiver(args=["--config", str(config)])
    c = srv.client()
    for i in range(6):
        put(c, f"ms/k{i}", ints(10))
    config.write_text(json.dumps({"max_entries": 3}))
    srv.restart()
    c = srv.client()
    assert stats(c)["budget"]["max_entries"] == 3
    assert len(keys(c)) <= 3, f"{len(keys(c))} keys stored with max_entries 3 after a restart"


def test_new_versions_of_one_key_stay_within_the_budget(quiver):
    """Versions count against cache_size. A version smaller than the budget, with nothing
    protected, is admitted (docs: only an entry larger than cache_size, or one that only
    protected entries could make room for, is refused)."""
    size = stored_size(10_000)
    cache_size = 200 * 1024  # two versions fit, three do not
    srv = quiver(args=["--cache-size", str(cache_size)])
    c = srv.client()
    put(c, "v/k", ints(10_000, start=1))
    put(c, "v/k", ints(10_000, start=2))
    assert stats(c)["budget"]["used"] == 2 * size
    ref = put(c, "v/k", ints(10_000, start=3))
    assert ref["version"] == 3
    assert read(c, "v/k").column("x")[0].as_py() == 3
    assert stats(c)["budget"]["used"] <= cache_size and disk_bytes(srv) <= cache_size


# -- shrink ----------------------------------------------------------------------------------


def populate_varied(c):
    for i, n in enumerate([1_000, 2_000, 4_000, 8_000, 16_000, 32_000]):
        put(c, f"s/e{i}", ints(n))
    for _ in range(5):
        read(c, "s/e5")
    read(c, "s/e0")


@pytest.mark.parametrize("policy", ["cost", "lru"])
def test_dry_run_shrink_lists_what_shrink_removes(quiver, policy):
    srv = quiver(args=["--eviction-policy", policy])
    c = srv.client()
    populate_varied(c)
    before = entries(c).to_pylist()
    used = stats(c)["budget"]["used"]
    target = used // 2
    expected = expected_victims(before, 0, target)
    assert 0 < len(expected) < len(before)

    dry = action(c, "shrink", {"below_bytes": target, "dry_run": True})
    assert dry == {"removed": expected, "dry_run": True}
    assert entries(c).to_pylist() == before, "a dry run changed something"
    assert stats(c)["evictions"] == 0

    real = action(c, "shrink", {"below_bytes": target})
    assert real == {"removed": dry["removed"], "dry_run": False}
    assert keys(c) == sorted(set(r["key"] for r in before) - set(expected))
    s = stats(c)
    assert s["evictions"] == len(expected) and s["budget"]["used"] <= target
    assert disk_bytes(srv) == s["budget"]["used"]

    # Already below: nothing; sizes may be strings; 0 empties the cache.
    assert action(c, "shrink", {"below_bytes": target, "dry_run": True})["removed"] == []
    assert action(c, "shrink", {"below_bytes": "1GiB"})["removed"] == []
    rest = action(c, "shrink", {"below_bytes": 0})["removed"]
    assert sorted(rest) == keys_before_minus(before, expected)
    assert stats(c)["entries"] == 0 and not srv.data_files()


def test_shrink_one_removes_the_lowest_score(server):
    c = server.client()
    populate_varied(c)
    n = len(keys(c))
    for i in range(n):
        lowest = lowest_scored(c)
        assert action(c, "shrink", {"one": True, "dry_run": True})["removed"] == [lowest]
        assert lowest in keys(c)
        assert action(c, "shrink", {"one": True}) == {"removed": [lowest], "dry_run": False}
        assert lowest not in keys(c)
        assert stats(c)["evictions"] == i + 1
    assert action(c, "shrink", {"one": True})["removed"] == []
    assert not server.data_files()


# -- access history across restarts -----------------------------------------------------------


def usage_file(srv):
    return pa.ipc.open_file(pa.memory_map(str(srv.data_dir / "state" / "usage.arrow"))).read_all()


@pytest.mark.embedded_only  # state/usage.arrow: a shared index keeps histories itself
def test_access_history_survives_a_restart(quiver):
    size = stored_size(1000)
    srv = quiver(args=["--eviction-policy", "lru", "--cache-size", str(3 * size)])
    c = srv.client()
    for k in ("s/a", "s/b", "s/c"):
        put(c, k, ints(1000))
    for _ in range(3):
        read(c, "s/a")
    before = entry_map(c)
    assert before["s/a"]["accesses"] == 4

    srv.restart()
    assert "restored the access histories of 3 of 3 entries" in srv.log()
    saved = usage_file(srv).to_pylist()
    assert sorted(r["key"] for r in saved) == ["s/a", "s/b", "s/c"]
    c = srv.client()
    after = entry_map(c)
    for k in before:
        assert after[k]["accesses"] == before[k]["accesses"], k
        assert after[k]["last_access"] == before[k]["last_access"], k
    assert sorted(after, key=lambda k: after[k]["score"]) == ["s/b", "s/c", "s/a"]
    # Creation order would evict s/a; its reads before the restart keep it.
    put(c, "s/d", ints(1000))
    assert keys(c) == ["s/a", "s/c", "s/d"]


@pytest.mark.embedded_only  # state/usage.arrow: a shared index keeps histories itself
def test_access_history_is_saved_periodically_and_survives_a_crash(quiver, workdir):
    config = write_config(workdir, "usage.json", {"usage_save_interval_s": 0.2})
    srv = quiver(args=["--config", str(config)])
    c = srv.client()
    put(c, "s/a", ints(10))
    put(c, "s/b", ints(10))
    for _ in range(5):
        read(c, "s/a")

    def saved_accesses():
        try:
            rows = usage_file(srv).to_pylist()
        except (FileNotFoundError, pa.ArrowInvalid):
            return None
        return {r["key"]: r["accesses"] for r in rows} == {"s/a": 6, "s/b": 1}

    wait_for(saved_accesses, 10.0, "the periodic save of the access histories")
    srv.kill()
    srv.start()
    c = srv.client()
    after = entry_map(c)
    assert after["s/a"]["accesses"] == 6 and after["s/b"]["accesses"] == 1


@pytest.mark.embedded_only  # state/usage.arrow: a shared index keeps histories itself
def test_usage_file_rows_are_in_key_order_and_restore_every_history(quiver):
    # Key order (not eviction order) lets a restart walk the file beside the index journal.
    srv = quiver(args=["--eviction-policy", "lru"])
    c = srv.client()
    for k in ("s/m", "s/c", "s/x", "s/a"):
        put(c, k, ints(10))
    for k, n in (("s/x", 3), ("s/a", 1)):
        for _ in range(n):
            read(c, k)
    srv.stop()
    rows = usage_file(srv).to_pylist()
    assert [r["key"] for r in rows] == ["s/a", "s/c", "s/m", "s/x"]
    assert {r["key"]: r["accesses"] for r in rows} == {"s/a": 2, "s/c": 1, "s/m": 1, "s/x": 4}
    srv.start()
    after = entry_map(srv.client())
    assert {k: after[k]["accesses"] for k in after} == {"s/a": 2, "s/c": 1, "s/m": 1, "s/x": 4}


@pytest.mark.embedded_only  # state/usage.arrow: a shared index keeps histories itself
def test_an_unreadable_usage_file_costs_only_the_history(quiver):
    srv = quiver()
    c = srv.client()
    put(c, "s/a", ints(10))
    read(c, "s/a")
    srv.stop()
    (srv.data_dir / "state" / "usage.arrow").write_bytes(b"garbage")
    srv.start()
    assert "access histories not restored" in srv.log()
    c = srv.client()
    assert entry_map(c)["s/a"]["accesses"] == 1, "restored from a file that was overwritten"
    assert read(c, "s/a").equals(ints(10))


def test_a_put_declares_its_cost(quiver):
    """`cost_ms` replaces the receive time as the entry's cost, and so orders eviction."""
    srv = quiver()
    c = srv.client()
    put(c, "cost/dear", ints(1000), app_metadata=json.dumps({"cost_ms": 2500}).encode())
    put(c, "cost/cheap", ints(1000), app_metadata=json.dumps({"cost_ms": 0}).encode())
    rows = entry_map(c)
    assert rows["cost/dear"]["cost_s"] == 2.5 and rows["cost/cheap"]["cost_s"] == 0.0, rows
    assert action(c, "shrink", {"one": True})["removed"] == ["cost/cheap"]
    for bad in (-1, "fast", 1e13):
        msg = server_error(put, c, "cost/bad", ints(10),
                           app_metadata=json.dumps({"cost_ms": bad}).encode())
        assert "cost_ms must be a non-negative number" in msg, msg
    assert sorted(entry_map(c)) == ["cost/dear"]
