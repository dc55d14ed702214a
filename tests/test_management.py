"""Cache management against the real server: the disk budget and eviction policies, the
memory tier, dependencies / tags / invalidation (also racing a running put or query fill),
shrink, run-time settings and the entries table (docs/management.md)."""

import json
import os
import sqlite3
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

from quiver_util import action, descriptor, get, put, stats
from query_util import run_query, ticket, wait_for

# -- helpers ---------------------------------------------------------------------------------


def ints(n, start=0):
    """A one-column int64 table; every table of the same n has the same stored size."""
    return pa.table({"x": np.arange(start, start + n, dtype=np.int64)})


def put_with(client, key, table, depends_on=None, tags=None):
    options = {}
    if depends_on is not None:
        options["depends_on"] = depends_on
    if tags is not None:
        options["tags"] = tags
    return put(client, key, table,
               app_metadata=json.dumps(options).encode() if options else None)


def entries(client, prefix=None):
    body = json.dumps({"prefix": prefix}).encode() if prefix is not None else b""
    results = list(client.do_action(flight.Action("entries", body)))
    assert len(results) == 1
    return pa.ipc.open_stream(results[0].body.to_pybytes()).read_all()


def entry_map(client, prefix=None):
    return {row["key"]: row for row in entries(client, prefix).to_pylist()}


def keys(client, prefix=None):
    return sorted(entry_map(client, prefix))


def lowest_scored(client):
    return min(entries(client).to_pylist(), key=lambda r: r["score"])["key"]


def keys_before_minus(before, removed):
    return sorted(set(r["key"] for r in before) - set(removed))


def expected_victims(rows, incoming, budget):
    """What the budget evicts to admit `incoming` bytes: lowest score first until it fits."""
    total = sum(r["bytes"] for r in rows) + incoming
    victims = []
    for r in sorted(rows, key=lambda r: r["score"]):
        if total <= budget:
            break
        victims.append(r["key"])
        total -= r["bytes"]
    return victims


def disk_bytes(srv):
    """Bytes of the committed data blobs; tolerant of files removed while we look."""
    total = 0
    for root, _, files in os.walk(srv.data_dir / "data"):  # os.walk skips vanished dirs
        for name in files:
            if name.endswith(".arrows"):
                try:
                    total += os.stat(os.path.join(root, name)).st_size
                except FileNotFoundError:
                    pass
    return total


def read(client, key):
    return get(client, key)[0]


def assert_missing(client, key):
    with pytest.raises(pa.ArrowKeyError, match="no object"):
        read(client, key)


def server_error(fn, *args, **kwargs):
    with pytest.raises(pa.ArrowException) as info:
        fn(*args, **kwargs)
    return str(info.value)


# A stored ints(n) is 8 * n + STORED_OVERHEAD bytes (schema + one batch header + end marker).
STORED_OVERHEAD = 280


def stored_size(n):
    return 8 * n + STORED_OVERHEAD


# -- the entries table ------------------------------------------------------------------------

ENTRY_SCHEMA = [
    ("key", pa.string(), False),
    ("kind", pa.string(), False),
    ("version", pa.uint64(), False),
    ("bytes", pa.int64(), False),
    ("rows", pa.int64(), False),
    ("cost_s", pa.float64(), False),
    ("created", pa.timestamp("ms", tz="UTC"), False),
    ("last_access", pa.timestamp("ms", tz="UTC"), False),
    ("accesses", pa.uint64(), False),
    ("score", pa.float64(), False),
    ("expires", pa.timestamp("ms", tz="UTC"), True),
    ("source", pa.string(), True),
    ("depends_on", pa.list_(pa.string()), False),
    ("tags", pa.list_(pa.string()), False),
    ("in_memory", pa.bool_(), False),
]


@pytest.fixture
def lite_db(workdir):
    path = workdir / "events.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, grp TEXT, amount INTEGER)")
    con.execute("""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
                   INSERT INTO events SELECT i, 'g' || (i % 5), i % 100 FROM n""")
    con.commit()
    con.close()
    return path


def lite_args(db):
    return ["--source", f"lite=sqlite://{db}"]


def slow_sql(n, select="count(*) AS c, sum(i) AS s"):
    """A deterministic recursive CTE that takes about n / 1e6 seconds in SQLite."""
    return (f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) "
            f"SELECT {select} FROM n")


def query_key(meta):
    return "@q/" + meta[0]["key"]


def wait_entry(client, key, timeout=10.0):
    """A query result commits just after its last batch is sent."""
    return wait_for(lambda: entry_map(client).get(key), timeout, f"{key} to be cached")


def test_entries_table_columns_and_types(quiver, lite_db):
    srv = quiver(args=lite_args(lite_db))
    c = srv.client()
    before_ms = int(time.time() * 1000)
    put_with(c, "e/base", ints(100))
    put_with(c, "e/derived", ints(50), depends_on=["e/base"], tags=["t:a", "t:b"])
    put(c, "e/base", ints(200))  # version 2: bytes covers both kept versions
    put_with(c, "e/derived", ints(50), depends_on=["e/base"], tags=["t:a", "t:b"])
    read(c, "e/derived")
    read(c, "e/derived")
    _, meta = run_query(c, source="lite", sql="SELECT count(*) AS n FROM events",
                        depends_on=["e/base"], tags=["table:events"], ttl_s=60)
    qkey = query_key(meta)
    wait_entry(c, qkey)

    table = entries(c)
    assert [(f.name, f.type, f.nullable) for f in table.schema] == ENTRY_SCHEMA
    rows = {r["key"]: r for r in table.to_pylist()}
    assert sorted(rows) == [qkey, "e/base", "e/derived"]

    base = rows["e/base"]
    assert base["kind"] == "object" and base["version"] == 2 and base["rows"] == 200
    assert base["bytes"] == stored_size(100) + stored_size(200)
    assert base["depends_on"] == [] and base["tags"] == []
    assert base["expires"] is None and base["source"] is None
    assert base["in_memory"] is False and base["cost_s"] >= 0

    derived = rows["e/derived"]
    assert derived["version"] == 1, "the new version of e/base should have invalidated it"
    assert derived["depends_on"] == ["e/base"] and derived["tags"] == ["t:a", "t:b"]
    assert derived["accesses"] == 3, "the write counts as the first access, then two reads"
    assert derived["last_access"] >= derived["created"]
    now_ms = int(time.time() * 1000) + 1000
    for r in rows.values():
        created_ms = r["created"].timestamp() * 1000
        assert before_ms - 1000 <= created_ms <= now_ms, r

    q = rows[qkey]
    assert q["kind"] == "query" and q["source"] == "lite" and q["rows"] == 1
    assert q["depends_on"] == ["e/base"] and q["tags"] == ["table:events"]
    assert (q["expires"] - q["created"]).total_seconds() == pytest.approx(60, abs=0.01)
    assert q["bytes"] > 0 and q["version"] == 1

    # the prefix filter, and the stored bytes agree with the files on disk
    assert entries(c, "e/").column("key").to_pylist() == ["e/base", "e/derived"]
    assert entries(c, "@q/").column("key").to_pylist() == [qkey]
    assert entries(c, "nothing/").num_rows == 0
    assert sum(r["bytes"] for r in rows.values()) == disk_bytes(srv) == stats(c)["budget"]["used"]


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

    # The budget's own accounting never goes over.
    assert max(used_samples) <= cache_size, (max(used_samples), cache_size)
    # On disk, each put in flight may add the one entry it is admitting (its blob is
    # committed before it reserves room, and its victim's file goes just after): never
    # more blobs at once than fit in the budget plus one per concurrent put.
    assert watch.max_present <= fits + threads, (
        f"{watch.max_present} blobs of {size} bytes existed at once; the budget holds "
        f"{fits}, with {threads} puts in flight")
    assert max(disk_samples) <= cache_size + threads * size

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
    assert lowest_scored(c) == "l/b"
    put(c, "l/d", ints(10_000))
    assert keys(c) == ["l/a", "l/c", "l/d"]
    assert stats(c)["evictions"] == 1

    read(c, "l/c")  # now a is the least recently used
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

    msg = server_error(put, c, "n/huge", ints(40_000))  # 320 KB > 256 KiB
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
    config = workdir / "protect.json"
    config.write_text(json.dumps({"cache_size": 2 * size + size // 2, "protect_s": 1.5}))
    srv = quiver(args=["--config", str(config)])
    c = srv.client()
    assert stats(c)["budget"]["protect_s"] == 1.5
    put(c, "pr/a", ints(10_000))
    put(c, "pr/b", ints(10_000))
    written = time.monotonic()
    msg = server_error(put, c, "pr/c", ints(10_000))
    assert "not admitted" in msg and "protected" in msg, msg
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
    config = workdir / "max.json"
    config.write_text(json.dumps({"max_entries": 3}))
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
    config = workdir / "max.json"
    config.write_text(json.dumps({"max_entries": 10}))
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


# -- the memory tier -------------------------------------------------------------------------


def test_memory_tier_serves_promoted_entries_within_its_bound(quiver):
    capacity = 256 * 1024  # entries up to 32 KiB are promoted
    small = stored_size(3_000)  # ~24 KB
    srv = quiver(args=["--memory-size", str(capacity)])
    c = srv.client()
    for i in range(20):
        put(c, f"m/k{i:02d}", ints(3_000, start=i))
    put(c, "m/big", ints(5_000))  # ~40 KB: too big for the tier
    mem = stats(c)["memory"]
    assert mem == {"capacity": capacity, "bytes": 0, "entries": 0, "hits": 0, "promotions": 0}

    # First reads copy into memory, later reads are served from there.
    for i in range(5):
        read(c, f"m/k{i:02d}")
    mem = stats(c)["memory"]
    assert mem["promotions"] == 5 and mem["hits"] == 0
    assert mem["entries"] == 5 and mem["bytes"] == 5 * small
    for i in range(5):
        got = read(c, f"m/k{i:02d}")
        assert got.equals(ints(3_000, start=i))
    mem = stats(c)["memory"]
    assert mem["hits"] == 5 and mem["promotions"] == 5
    flags = {k: r["in_memory"] for k, r in entry_map(c).items()}
    assert all(flags[f"m/k{i:02d}"] for i in range(5))
    assert not any(flags[f"m/k{i:02d}"] for i in range(5, 20))

    # Too big for the tier: read from disk every time.
    read(c, "m/big")
    assert read(c, "m/big").equals(ints(5_000))
    mem = stats(c)["memory"]
    assert mem["promotions"] == 5 and mem["hits"] == 5
    assert entry_map(c)["m/big"]["in_memory"] is False

    # Reading everything: the tier stays within capacity, least recently used out.
    for i in range(20):
        read(c, f"m/k{i:02d}")
        mem = stats(c)["memory"]
        assert mem["bytes"] <= mem["capacity"] == capacity, mem
    fits = capacity // small
    mem = stats(c)["memory"]
    assert mem["entries"] == fits and mem["bytes"] == fits * small
    flags = {k: r["in_memory"] for k, r in entry_map(c).items()}
    in_memory = [k for k, v in sorted(flags.items()) if v]
    assert in_memory == [f"m/k{i:02d}" for i in range(20 - fits, 20)]

    # A new version is never served from the old copy.
    put(c, "m/k19", ints(3_000, start=1_000_000))
    assert entry_map(c)["m/k19"]["in_memory"] is False
    assert read(c, "m/k19").column("x")[0].as_py() == 1_000_000
    assert read(c, "m/k19").column("x")[0].as_py() == 1_000_000
    assert entry_map(c)["m/k19"]["in_memory"] is True
    assert stats(c)["memory"]["bytes"] <= capacity

    # Invalidated entries leave the tier too.
    hits = stats(c)["memory"]["hits"]
    action(c, "invalidate", {"key": "m/k18"})
    assert_missing(c, "m/k18")
    assert stats(c)["memory"]["hits"] == hits
    assert stats(c)["memory"]["entries"] == fits - 1

    # Shrinking the tier at run time evicts from it at once; entries over the new
    # memory_size / 8 are no longer promoted.
    action(c, "config-set", {"memory_size": "64KiB"})
    mem = stats(c)["memory"]
    assert mem["capacity"] == 65536 and mem["bytes"] <= 65536
    promotions = mem["promotions"]
    read(c, "m/k00")
    read(c, "m/k00")
    assert stats(c)["memory"]["promotions"] == promotions


def test_memory_tier_serves_query_hits(quiver, lite_db):
    srv = quiver(args=[*lite_args(lite_db), "--memory-size", "1MiB"])
    c = srv.client()
    sql = "SELECT grp, sum(amount) AS s FROM events GROUP BY grp ORDER BY grp"
    first, meta = run_query(c, source="lite", sql=sql)
    key = query_key(meta)
    wait_entry(c, key)
    assert entry_map(c)[key]["in_memory"] is False
    for _ in range(3):
        table, m = run_query(c, source="lite", sql=sql)
        assert m[0]["cache"] == "hit" and table.equals(first)
    mem = stats(c)["memory"]
    assert mem["promotions"] == 1 and mem["hits"] == 2 and mem["entries"] == 1
    assert entry_map(c)[key]["in_memory"] is True
    # Turning the tier off empties it.
    assert action(c, "config-set", {"memory_size": 0})["memory_size"] == 0
    mem = stats(c)["memory"]
    assert mem["bytes"] == 0 and mem["entries"] == 0 and mem["capacity"] == 0
    run_query(c, source="lite", sql=sql)
    assert stats(c)["memory"]["promotions"] == 1


def test_memory_max_entry_bytes_from_the_config_file(quiver, workdir):
    config = workdir / "mem.json"
    config.write_text(json.dumps({"memory_size": "1MiB", "memory_max_entry_bytes": "16KiB"}))
    srv = quiver(args=["--config", str(config)])
    c = srv.client()
    put(c, "mm/small", ints(1_000))  # ~8 KB
    put(c, "mm/medium", ints(3_000))  # ~24 KB: under memory_size / 8 but over 16 KiB
    for _ in range(3):
        read(c, "mm/small")
        read(c, "mm/medium")
    mem = stats(c)["memory"]
    assert mem["capacity"] == 1 << 20
    assert mem["promotions"] == 1 and mem["hits"] == 2
    assert mem["bytes"] == stored_size(1_000)
    flags = {k: r["in_memory"] for k, r in entry_map(c).items()}
    assert flags == {"mm/small": True, "mm/medium": False}


# -- dependencies, tags and invalidation --------------------------------------------------------


def diamond(c, roots=True):
    """root <- left, right <- join <- top (four levels, a diamond), side <- left, other."""
    if roots:
        put(c, "g/root", ints(10))
    put_with(c, "g/left", ints(11), depends_on=["g/root"])
    put_with(c, "g/right", ints(12), depends_on=["g/root"])
    put_with(c, "g/join", ints(13), depends_on=["g/left", "g/right"])
    put_with(c, "g/top", ints(14), depends_on=["g/join"])
    put_with(c, "g/side", ints(15), depends_on=["g/left"])
    if roots:
        put(c, "g/other", ints(16))


def test_cascade_over_a_diamond(server):
    c = server.client()
    diamond(c)
    assert entry_map(c)["g/join"]["depends_on"] == ["g/left", "g/right"]
    files = len(server.data_files())
    removed = action(c, "invalidate", {"key": "g/root", "cascade": True})["removed"]
    assert sorted(removed) == ["g/join", "g/left", "g/right", "g/root", "g/side", "g/top"]
    assert len(removed) == len(set(removed)), "the diamond's join was removed twice"
    assert keys(c) == ["g/other"]
    s = stats(c)
    assert s["invalidations"] == 6 and s["evictions"] == 0 and s["entries"] == 1
    assert len(server.data_files()) == files - 6
    for k in removed:
        assert_missing(c, k)
    # Nothing left to remove; cascade is the default, and a bare key is accepted.
    assert action(c, "invalidate", {"key": "g/root"})["removed"] == []
    assert action(c, "invalidate", "g/other")["removed"] == ["g/other"]
    assert stats(c)["invalidations"] == 7


def test_cascade_from_the_middle_and_without_cascade(server):
    c = server.client()
    diamond(c)
    removed = action(c, "invalidate", {"key": "g/left"})["removed"]
    assert sorted(removed) == ["g/join", "g/left", "g/side", "g/top"]
    assert keys(c) == ["g/other", "g/right", "g/root"]

    diamond(c)
    removed = action(c, "invalidate", {"key": "g/join", "cascade": False})["removed"]
    assert removed == ["g/join"]
    assert keys(c) == ["g/left", "g/other", "g/right", "g/root", "g/side", "g/top"]
    assert entry_map(c)["g/top"]["depends_on"] == ["g/join"]
    # g/top still depends on the (now missing) g/join: invalidating that key reaches it.
    assert action(c, "invalidate", {"key": "g/join"})["removed"] == ["g/top"]
    assert action(c, "invalidate", {"key": "g/root", "cascade": False})["removed"] == ["g/root"]
    assert keys(c) == ["g/left", "g/other", "g/right", "g/side"]


def test_invalidate_tag_cascades(server):
    c = server.client()
    put_with(c, "tg/x", ints(1), tags=["t1"])
    put_with(c, "tg/y", ints(2), tags=["t1", "t2"])
    put_with(c, "tg/z", ints(3), depends_on=["tg/x"])
    put_with(c, "tg/zz", ints(4), depends_on=["tg/z"])
    put_with(c, "tg/w", ints(5), tags=["t2"])
    put(c, "tg/plain", ints(6))
    removed = action(c, "invalidate-tag", {"tag": "t1"})["removed"]
    assert sorted(removed) == ["tg/x", "tg/y", "tg/z", "tg/zz"]
    assert keys(c) == ["tg/plain", "tg/w"]
    assert action(c, "invalidate-tag", {"tag": "t1"})["removed"] == []
    assert action(c, "invalidate-tag", {"tag": "no-such-tag"})["removed"] == []
    assert action(c, "invalidate-tag", "t2")["removed"] == ["tg/w"]
    assert stats(c)["invalidations"] == 5
    # A tag is the latest version's: a re-put without it is no longer tagged.
    put_with(c, "tg/v", ints(1), tags=["t3"])
    put(c, "tg/v", ints(2))
    assert action(c, "invalidate-tag", {"tag": "t3"})["removed"] == []
    assert "tg/v" in keys(c)


def test_dependencies_and_tags_survive_a_restart(server):
    c = server.client()
    diamond(c)
    put_with(c, "g/tagged", ints(1), tags=["t:x"])
    put_with(c, "g/below-tagged", ints(1), depends_on=["g/tagged"])
    server.restart()
    c = server.client()
    assert entry_map(c)["g/join"]["depends_on"] == ["g/left", "g/right"]
    removed = action(c, "invalidate", {"key": "g/root"})["removed"]
    assert sorted(removed) == ["g/join", "g/left", "g/right", "g/root", "g/side", "g/top"]
    assert sorted(action(c, "invalidate-tag", {"tag": "t:x"})["removed"]) == [
        "g/below-tagged", "g/tagged"]
    assert keys(c) == ["g/other"]


def test_a_new_version_invalidates_dependents(server):
    c = server.client()
    diamond(c)
    put_with(c, "g/unrelated", ints(1), depends_on=["g/other"])
    put(c, "g/root", ints(100))  # version 2
    rows = entry_map(c)
    assert sorted(rows) == ["g/other", "g/root", "g/unrelated"]
    assert rows["g/root"]["version"] == 2 and rows["g/root"]["rows"] == 100
    assert stats(c)["invalidations"] == 5

    # Re-derive, then a new version of a middle key takes only what is below it.
    diamond(c, roots=False)
    put(c, "g/right", ints(5))
    assert keys(c) == ["g/left", "g/other", "g/right", "g/root", "g/side", "g/unrelated"]
    assert stats(c)["invalidations"] == 7
    # A new version of a leaf invalidates nothing.
    put(c, "g/side", ints(5))
    assert len(keys(c)) == 6 and stats(c)["invalidations"] == 7


def test_query_results_with_dependencies_and_tags(quiver, lite_db):
    srv = quiver(args=lite_args(lite_db))
    c = srv.client()
    put(c, "db/events", ints(3))

    def q(sql, **extra):
        table, meta = run_query(c, source="lite", sql=sql, **extra)
        return table, meta[0]

    count_sql = "SELECT count(*) AS n FROM events"
    sum_sql = "SELECT sum(amount) AS s FROM events"
    max_sql = "SELECT max(id) AS m FROM events"
    t1, m1 = q(count_sql, depends_on=["db/events"], tags=["table:events"])
    assert t1.column("n").to_pylist() == [1000] and m1["cache"] == "miss"
    q1 = "@q/" + m1["key"]
    _, m2 = q(sum_sql, tags=["table:events"])
    q2 = "@q/" + m2["key"]
    _, m3 = q(max_sql, depends_on=[q1])  # a query computed from another query's result
    q3 = "@q/" + m3["key"]
    for k in (q1, q2, q3):
        wait_entry(c, k)
    put_with(c, "rep/summary", ints(1), depends_on=[q2])
    rows = entry_map(c)
    assert rows[q1]["depends_on"] == ["db/events"] and rows[q1]["tags"] == ["table:events"]
    assert rows[q3]["depends_on"] == [q1] and rows[q3]["kind"] == "query"
    assert q(count_sql, depends_on=["db/events"], tags=["table:events"])[1]["cache"] == "hit"

    # A new version of the table invalidates q1, and through it q3.
    put(c, "db/events", ints(4))
    assert keys(c) == sorted([q2, "db/events", "rep/summary"])
    _, again = q(count_sql, depends_on=["db/events"], tags=["table:events"])
    assert again["cache"] == "miss" and again["key"] == m1["key"]
    wait_entry(c, q1)
    assert q(max_sql, depends_on=[q1])[1]["cache"] == "miss"
    wait_entry(c, q3)

    # The tag takes q1 and q2, and what depends on them: q3 and the object rep/summary.
    removed = action(c, "invalidate-tag", {"tag": "table:events"})["removed"]
    assert sorted(removed) == sorted([q1, q2, q3, "rep/summary"])
    assert keys(c) == ["db/events"]
    assert q(sum_sql, tags=["table:events"])[1]["cache"] == "miss"
    wait_entry(c, q2)

    # A query result can be invalidated by its key.
    assert action(c, "invalidate", {"key": q2, "cascade": False})["removed"] == [q2]
    assert q(sum_sql)[1]["cache"] == "miss"
    assert stats(c)["queries"]["executions"] == 7


def test_a_refreshed_query_result_invalidates_its_dependents(quiver, lite_db):
    """An expired query result that runs again is a new version of its key, with new data:
    what was computed from the old result is stale, as after a new version of an object."""
    srv = quiver(args=lite_args(lite_db))
    c = srv.client()
    sql = "SELECT sum(amount) AS s FROM events"
    old, meta = run_query(c, source="lite", sql=sql, ttl_s=0.5)
    key = query_key(meta)
    wait_entry(c, key)
    put_with(c, "rep/from-query", ints(1), depends_on=[key])
    con = sqlite3.connect(lite_db)
    con.execute("INSERT INTO events VALUES (100001, 'g9', 1000000)")
    con.commit()
    con.close()
    time.sleep(0.6)
    new, meta2 = run_query(c, source="lite", sql=sql, ttl_s=0.5)
    assert meta2[0]["cache"] == "miss"
    assert new.column("s")[0].as_py() == old.column("s")[0].as_py() + 1_000_000
    wait_for(lambda: entry_map(c).get(key, {}).get("version") == 2, what="the new version")
    assert "rep/from-query" not in keys(c), "an entry computed from the old result survived"


# -- an invalidation racing a computation wins ----------------------------------------------------


def test_invalidation_during_a_query_fill_wins(quiver, lite_db):
    srv = quiver(args=lite_args(lite_db))
    c = srv.client()
    put(c, "db/src", ints(3))
    n = 1_500_000  # ~1.5 s; 23 batches of 64Ki rows, more than gRPC buffers
    sql = slow_sql(n, select="i, i * 2 AS j")
    reader = c.do_get(ticket(source="lite", sql=sql, depends_on=["db/src"]))
    first = reader.read_chunk()
    meta = json.loads(first.app_metadata.to_pybytes())
    assert meta["cache"] == "miss" and meta["cached"] is True
    # The fill is running (its first batch arrived): invalidate what it depends on.
    assert action(c, "invalidate", {"key": "db/src"})["removed"] == ["db/src"]
    assert stats(c)["queries"]["not_cached"] == 0, "the query finished before the invalidation"
    # Let the fill reach its commit while this reader lags behind.
    wait_for(lambda: stats(c)["queries"]["not_cached"] == 1, 20, "the fill to finish")

    rows, total, metas = first.data.num_rows, pc.sum(first.data.column("i")).as_py(), []
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            break
        if chunk.app_metadata is not None:
            metas.append(json.loads(chunk.app_metadata.to_pybytes()))
        if chunk.data is not None:
            rows += chunk.data.num_rows
            total += pc.sum(chunk.data.column("i")).as_py()
    assert rows == n and total == n * (n + 1) // 2, "the reader did not get the full result"
    assert any(m.get("cached") is False and "not committed" in m.get("reason", "")
               and "db/src was invalidated" in m["reason"] for m in metas), metas

    key = "@q/" + meta["key"]
    time.sleep(0.2)
    assert key not in entry_map(c) and stats(c)["entries"] == 0
    assert not srv.tmp_files() and not srv.data_files()
    assert stats(c)["not_admitted"] == 0
    # The next request is a miss, and that execution (no invalidation meanwhile) is cached.
    t2, m2 = run_query(c, source="lite", sql=sql, depends_on=["db/src"])
    assert m2[0]["cache"] == "miss" and t2.num_rows == n
    wait_entry(c, key)
    assert stats(c)["queries"]["executions"] == 2


def open_put(client, key, table, options):
    """Start a put: options and the first batch are sent, the stream stays open."""
    writer, reader = client.do_put(descriptor(key), table.schema)
    writer.write_metadata(json.dumps(options).encode())
    writer.write_batch(table.to_batches()[0])
    return writer, reader


def finish_put(writer, reader, table):
    """Send the rest; the put must fail. Returns the server's error message."""
    error = None
    try:
        for b in table.to_batches()[1:]:
            writer.write_batch(b)
        writer.done_writing()
        reader.read()
    except pa.ArrowException as e:
        error = e
    try:
        writer.close()
    except pa.ArrowException as e:
        error = e  # the close carries the server's final status
    assert error is not None, "the put committed"
    return str(error)


def test_invalidation_during_a_put_wins(server):
    c = server.client()
    put(c, "r/base", ints(10))
    data = pa.Table.from_batches([ints(100).to_batches()[0]] * 3)

    def wait_tmp(n):
        wait_for(lambda: len(server.tmp_files()) >= n, 10, "the put to begin")

    # 1. The key it depends on is invalidated.
    w, r = open_put(c, "r/derived", data, {"depends_on": ["r/base"]})
    wait_tmp(1)
    assert action(c, "invalidate", {"key": "r/base"})["removed"] == ["r/base"]
    msg = finish_put(w, r, data)
    assert "not committed" in msg and "r/base was invalidated" in msg, msg
    # 2. A tag it carries is invalidated (even though nothing carried it yet).
    w, r = open_put(c, "r/tagged", data, {"tags": ["tg"]})
    wait_tmp(1)
    assert action(c, "invalidate-tag", {"tag": "tg"})["removed"] == []
    msg = finish_put(w, r, data)
    assert "not committed" in msg and "tg was invalidated" in msg, msg
    # 3. A new version of the key it depends on is written meanwhile.
    put(c, "r/base", ints(10))
    w, r = open_put(c, "r/derived", data, {"depends_on": ["r/base"]})
    wait_tmp(1)
    put(c, "r/base", ints(11))
    msg = finish_put(w, r, data)
    assert "not committed" in msg and "r/base was invalidated" in msg, msg

    assert keys(c) == ["r/base"]
    wait_for(lambda: not server.tmp_files(), 5, "temp files to go")
    assert len(server.data_files()) == 2  # the two versions of r/base
    s = stats(c)
    assert s["put_failures"] == 3 and s["not_admitted"] == 0
    # Started after the invalidation, the same put commits.
    assert put_with(c, "r/derived", data, depends_on=["r/base"])["version"] == 1
    assert read(c, "r/derived").num_rows == 300


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


# -- run-time settings --------------------------------------------------------------------------


def test_config_set_survives_a_restart(quiver):
    srv = quiver(args=["--cache-size", "10MiB"])
    c = srv.client()
    assert action(c, "config-get") == {"half_life": 1000.0, "cache_size": 10 << 20,
                                       "memory_size": 0, "policy": "cost",
                                       "max_entries": 1_000_000, "protect_s": 0.0}
    wanted = {"half_life": 2000.0, "cache_size": 64 << 20, "memory_size": 1 << 20,
              "policy": "cost", "max_entries": 1_000_000, "protect_s": 0.0}
    got = action(c, "config-set", {"half_life": 2000, "cache_size": "64MiB",
                                   "memory_size": 1048576})
    assert got == wanted
    assert action(c, "config-get") == wanted
    s = stats(c)
    assert s["budget"]["half_life"] == 2000 and s["budget"]["cache_size"] == 64 << 20
    assert s["memory"]["capacity"] == 1 << 20

    srv.restart()
    c = srv.client()
    assert action(c, "config-get") == wanted
    # A partial change keeps the other saved settings, also across a restart, and the
    # saved settings win over the flags of a later start.
    assert action(c, "config-set", {"half_life": 500})["cache_size"] == 64 << 20
    srv.restart(args=["--cache-size", "5MiB", "--half-life", "7"])
    c = srv.client()
    assert action(c, "config-get") == {**wanted, "half_life": 500.0}
    s = stats(c)
    assert s["budget"]["cache_size"] == 64 << 20 and s["memory"]["capacity"] == 1 << 20
    assert "using settings saved by config-set" in srv.log()


def test_a_smaller_cache_size_evicts_at_once(quiver):
    size = stored_size(10_000)
    srv = quiver(args=["--cache-size", "10MiB"])
    c = srv.client()
    for i in range(10):
        put(c, f"c/k{i}", ints(10_000))
    for i in (2, 5, 7):
        for _ in range(5):
            read(c, f"c/k{i}")
    before = entries(c).to_pylist()
    new_size = 4 * size + size // 2
    expected = expected_victims(before, 0, new_size)
    assert len(expected) == 6

    got = action(c, "config-set", {"cache_size": new_size})
    assert got["cache_size"] == new_size
    s = stats(c)
    assert s["evictions"] == 6 and s["entries"] == 4
    assert s["budget"]["used"] == 4 * size <= new_size
    assert disk_bytes(srv) == 4 * size
    survivors = keys(c)
    assert survivors == keys_before_minus(before, expected)

    # Still within the smaller budget after a restart (it was saved), and a put evicts.
    srv.restart()
    c = srv.client()
    assert action(c, "config-get")["cache_size"] == new_size
    assert keys(c) == survivors
    put(c, "c/new", ints(10_000))
    assert len(keys(c)) == 4 and "c/new" in keys(c)
    assert disk_bytes(srv) <= new_size


@pytest.mark.parametrize("body, needle", [
    ({"bogus": 1}, "unknown setting 'bogus'"),
    ({"cache_size": "lots"}, "'lots' is not a byte size"),
    ({"cache_size": "12parsecs"}, "unknown size unit"),
    ({"cache_size": 0}, "cache_size must be > 0"),
    ({"cache_size": -5}, "cache_size must be > 0"),
    ({"cache_size": True}, "byte count"),
    ({"memory_size": -1}, "memory_size must be >= 0"),
    ({"half_life": 0}, "half_life must be > 0"),
    ({"half_life": "x"}, "'half_life' must be a number"),
    ({"half_life": 3000, "cache_size": 0}, "cache_size must be > 0"),
    ({"memory_size": "1MiB", "zzz": 1}, "unknown setting 'zzz'"),
    ("[1, 2]", "JSON object"),
], ids=lambda v: json.dumps(v) if isinstance(v, dict) else None)
def test_config_set_rejects_bad_settings(server, body, needle):
    c = server.client()
    before = action(c, "config-get")
    msg = server_error(action, c, "config-set", body)
    assert needle in msg, msg
    assert action(c, "config-get") == before, "a refused config-set changed something"
    server.restart()
    assert action(server.client(), "config-get") == before


@pytest.mark.parametrize("name, body, needle", [
    ("shrink", {}, "shrink takes"),
    ("shrink", {"one": True, "below_bytes": 1}, "shrink takes"),
    ("shrink", {"below_bytes": -1}, "must be >= 0"),
    ("shrink", {"below_bytes": "huge"}, "not a byte size"),
    ("invalidate", {}, "{\"key\""),
    ("invalidate", {"key": "nosegments"}, "2 segments"),
    ("invalidate", {"key": "a/b", "cascade": "yes"}, "'cascade' must be true or false"),
    ("invalidate-tag", {"tag": ""}, "must not be empty"),
    ("invalidate-tag", {"tag": 3}, "{\"tag\""),
    ("entries", "not json", "JSON object"),
    # wrong JSON types must be named too, not end as an opaque internal error
    ("entries", {"prefix": 5}, "prefix"),
    ("shrink", {"one": "yes"}, "one"),
    ("shrink", {"below_bytes": 10, "dry_run": 1}, "dry_run"),
], ids=lambda v: json.dumps(v) if isinstance(v, dict) else None)
def test_management_actions_reject_bad_bodies(server, name, body, needle):
    c = server.client()
    put(c, "a/b", ints(5))
    msg = server_error(action, c, name, body)
    assert needle in msg and "Unexpected error" not in msg, msg
    assert keys(c) == ["a/b"]
    assert server.running()


def test_list_actions_names_the_management_actions(server):
    listed = {a.type: a.description for a in server.client().list_actions()}
    for name in ("entries", "shrink", "invalidate", "invalidate-tag", "config-get",
                 "config-set", "stats"):
        assert name in listed and listed[name], name
