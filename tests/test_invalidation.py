"""Dependencies, tags and invalidation against the real server: cascades over a diamond,
tags, new versions, query results as dependencies, and an invalidation racing a running
put or query fill (docs/management.md)."""

import json
import sqlite3
import time

import pyarrow as pa
import pyarrow.compute as pc

from management_util import (assert_missing, entry_map, ints, keys, lite_args, put_with,
                             query_key, read, slow_sql, wait_entry)
from management_util import lite_db  # noqa: F401  (fixture)
from quiver_util import action, chunks, descriptor, put, stats
from query_util import run_query, ticket, wait_for

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
    for chunk in chunks(reader):
        if chunk.app_metadata is not None:
            metas.append(json.loads(chunk.app_metadata.to_pybytes()))
        if chunk.data is not None:
            rows += chunk.data.num_rows
            total += pc.sum(chunk.data.column("i")).as_py()
    assert rows == n and total == n * (n + 1) // 2, "the reader did not get the full result"
    assert any(m.get("cached") is False and "not committed" in m.get("reason", "")
               and "db/src was invalidated" in m["reason"] for m in metas), metas

    key = "@q/" + meta["key"]
    wait_for(lambda: not srv.tmp_files() and not srv.data_files(),
             what="the refused result's files to be removed")
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
