"""Concurrent clients: 8 threads x 50 mixed puts and gets on 4 overlapping keys."""

import random
import threading

import pyarrow as pa
import pytest

from quiver_util import get, put, stats

THREADS = 8
OPS = 50
KEYS = [f"conc/k{i}" for i in range(4)]


def table_of(thread, op, key):
    """A table unique to (thread, op); its content says which put it came from."""
    n = 1 + (thread * 7 + op) % 13
    return pa.table({
        "thread": pa.array([thread] * n, pa.int32()),
        "op": pa.array([op] * n, pa.int32()),
        "key": pa.array([key] * n),
        "payload": pa.array([f"{thread}:{op}:{i}" * (1 + i % 3) for i in range(n)]),
    })


@pytest.mark.parametrize("keep_versions", [1000, 3])
def test_concurrent_puts_and_gets(quiver, keep_versions):
    server = quiver(args=["--keep-versions", str(keep_versions)])
    barrier = threading.Barrier(THREADS)
    puts = []      # (key, version, thread, op) in the order each thread saw them
    gets = []      # (key, version, status, table)
    errors = []
    lock = threading.Lock()

    def worker(tid):
        client = server.client()
        rnd = random.Random(tid)
        barrier.wait()
        try:
            for op in range(OPS):
                key = rnd.choice(KEYS)
                if rnd.random() < 0.5:
                    ref = put(client, key, table_of(tid, op, key))
                    assert ref["key"] == key
                    with lock:
                        puts.append((key, ref["version"], tid, op))
                else:
                    try:
                        table, meta, _, _ = get(client, key)
                    except KeyError:
                        with lock:
                            gets.append((key, None, None, None))
                        continue
                    with lock:
                        gets.append((key, meta["version"], meta["status"], table))
        except Exception as e:  # reported below, with the thread that failed
            with lock:
                errors.append((tid, repr(e)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert errors == []

    by_key = {k: [p for p in puts if p[0] == k] for k in KEYS}
    version_to_put = {}
    for key, ps in by_key.items():
        versions = sorted(v for _, v, _, _ in ps)
        # unique, and exactly 1..n: no version lost or handed out twice
        assert versions == list(range(1, len(ps) + 1)), (key, versions)
        for _, v, tid, op in ps:
            version_to_put[(key, v)] = (tid, op)
        # each thread's own puts to a key committed in order
        for tid in range(THREADS):
            mine = [v for _, v, t, _ in ps if t == tid]
            assert mine == sorted(mine), (key, tid, mine)

    client = server.client()
    for key, ps in by_key.items():
        n = len(ps)
        if n == 0:
            with pytest.raises(KeyError):
                get(client, key)
            continue
        table, meta, _, _ = get(client, key)
        assert meta["version"] == n
        tid, op = version_to_put[(key, n)]
        assert table.equals(table_of(tid, op, key))
        # every kept version holds exactly what the put that got that number sent
        for v in range(max(1, n - keep_versions + 1), n + 1):
            tid, op = version_to_put[(key, v)]
            assert get(client, f"{key}@{v}")[0].equals(table_of(tid, op, key)), (key, v)
        if n > keep_versions:
            with pytest.raises(KeyError):
                get(client, f"{key}@{n - keep_versions}")

    # every get returned one of the tables put to that key, labelled with its version
    for key, version, status, table in gets:
        if version is None:
            continue
        assert status == "ok"
        tid, op = version_to_put[(key, version)]
        assert table.equals(table_of(tid, op, key)), (key, version)

    st = stats(client)
    assert st["puts"] == len(puts) and st["put_failures"] == 0
    assert st["entries"] == sum(1 for ps in by_key.values() if ps)
    assert st["versions"] == sum(min(len(ps), keep_versions) for ps in by_key.values())
    assert st["hits"] == sum(1 for g in gets if g[1] is not None) + \
        sum(min(len(ps), keep_versions) + 1 for ps in by_key.values() if ps)
    assert len(server.data_files()) == st["versions"]
    assert server.tmp_files() == []
    assert len(puts) + len(gets) == THREADS * OPS


def test_concurrent_create_only_has_one_winner(server):
    """8 threads race a create-only put of the same key: exactly one wins."""
    barrier = threading.Barrier(THREADS)
    results = [None] * THREADS

    def worker(tid):
        client = server.client()
        barrier.wait()
        try:
            results[tid] = ("ok", put(client, "race/create", table_of(tid, 0, "race/create"),
                                      if_version=0)["version"])
        except pa.ArrowException as e:
            results[tid] = ("err", str(e))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [i for i, r in enumerate(results) if r[0] == "ok"]
    assert len(winners) == 1, results
    assert results[winners[0]][1] == 1
    for r in results:
        if r[0] == "err":
            assert "version conflict" in r[1]
    client = server.client()
    assert get(client, "race/create")[0].equals(table_of(winners[0], 0, "race/create"))
    st = stats(client)
    assert st["puts"] == 1 and st["put_failures"] == THREADS - 1
    assert len(server.data_files()) == 1 and server.tmp_files() == []
