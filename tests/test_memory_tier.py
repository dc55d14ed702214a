"""The memory tier against the real server: promotion, its bound, query hits served from
memory, invalidation and run-time resizing (docs/management.md)."""


from management_util import (assert_missing, entry_map, ints, lite_args, query_key, read,
                             stored_size, wait_entry)
from management_util import lite_db  # noqa: F401  (fixture)
from quiver_util import action, put, stats, write_config
from query_util import run_query

# -- the memory tier -------------------------------------------------------------------------


def test_memory_tier_serves_promoted_entries_within_its_bound(quiver):
    capacity = 256 * 1024  # entries up to 32 KiB are promoted
    small = stored_size(3_000)  # ~24 KB
    # The tier evicts by the cache's policy; with lru the order is predictable here (the
    # cost-aware order is covered by the MemoryTier unit tests).
    srv = quiver(args=["--memory-size", str(capacity), "--eviction-policy", "lru"])
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
    config = write_config(workdir, "mem.json",
                          {"memory_size": "1MiB", "memory_max_entry_bytes": "16KiB"})
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
