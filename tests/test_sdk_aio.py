"""quiver.aio against the real quiver binary: the calls as coroutines, run concurrently,
and what cancelling the awaiting task does."""

import asyncio
import threading
import time

import pyarrow as pa
import pytest

from sdk_util import artifact_server, hung, lite  # noqa: F401  (fixture)
import quiver
import quiver.aio
from query_util import wait_for

TABLE = pa.table({"x": [1, 2, 3]})


def test_calls_run_concurrently(server):
    async def main():
        async with quiver.aio.connect(server.location, max_workers=4) as aq:
            refs = await asyncio.gather(*(aq.put(f"a/k{i}", pa.table({"x": [i] * (i + 1)}))
                                          for i in range(16)))
            assert [r.version for r in refs] == [1] * 16
            tables = await asyncio.gather(*(aq.get(r) for r in refs))
            assert [t.num_rows for t in tables] == [i + 1 for i in range(16)]

            got = await aq.get_with_meta("a/k3")
            assert got.ref == refs[3] and got.value.column("x").to_pylist() == [3] * 4
            updated = await aq.update(refs[3], TABLE)
            assert updated.version == 2
            with pytest.raises(quiver.VersionConflict) as e:
                await aq.update(refs[3], TABLE)
            assert e.value.current_version == 2
            await aq.put("a/bytes", b"\x00payload")
            assert await aq.get("a/bytes") == b"\x00payload"

            info, listed, st = await asyncio.gather(aq.info("a/k3"), aq.list("a/"), aq.stats())
            assert info.version == 2 and info.rows == 3
            assert len(listed) == 17 and st["puts"] == 18
            assert (await aq.entries(prefix="a/k1")).num_rows == 7  # k1, k10..k15
            assert (await aq.delete("a/k0")).keys == ("a/k0",)
            assert (await aq.invalidate("a/k1", cascade=False)).keys == ("a/k1",)
            assert (await aq.invalidate_tag("nothing")).keys == ()
            assert (await aq.shrink(one=True)).keys
            assert (await aq.config_set("half_life", 500))["half_life"] == 500
            assert await aq.config_get("half_life") == 500
            assert len((await aq.delete_prefix("a")).keys) == 14
            with pytest.raises(quiver.NotFound):
                await aq.get("a/k0")

    asyncio.run(main())


def test_query(lite):
    async def main():
        async with quiver.aio.connect(lite.location) as aq:
            sql = "SELECT grp, count(*) AS n FROM events GROUP BY grp ORDER BY grp"
            results = await asyncio.gather(*(aq.query(sql, source="lite") for _ in range(4)))
            assert {r.meta.key for r in results} == {results[0].meta.key}
            tables = await asyncio.gather(*(r.read_all() for r in results))
            assert all(t.column("n").to_pylist() == [250] * 4 for t in tables)
            df = await (await aq.query(sql, source="lite", preview=True)).to_pandas()
            assert list(df["n"]) == [250] * 4

    asyncio.run(main())


STREAMING_SQL = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                 "WHERE i < 500000000) SELECT i FROM n")


def test_cancelling_a_read_frees_its_thread_at_once(lite):
    async def main():
        async with quiver.aio.connect(lite.location, max_workers=1) as aq:
            # query() returns with the first batch; the rest streams for minutes.
            result = await aq.query(STREAMING_SQL, source="lite", preview=True)
            assert result.meta.cache == "bypass"
            task = asyncio.ensure_future(result.read_all())
            # A put queued behind it on the one thread, cancelled before it starts.
            queued = asyncio.ensure_future(aq.put("c/never", TABLE))
            await asyncio.sleep(0.3)
            assert not task.done()
            queued.cancel()
            task.cancel()
            started = time.monotonic()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(asyncio.CancelledError):
                await queued
            # The only worker thread is free again: the stream was cancelled, not waited out.
            assert (await asyncio.wait_for(aq.stats(), 5))["queries"]["bypasses"] == 1
            assert time.monotonic() - started < 5
            with pytest.raises(quiver.NotFound):
                await aq.get("c/never")
            # The server saw its only reader leave and stopped the execution.
            await asyncio.to_thread(lite.wait_for_log, "every reader went away")

    asyncio.run(main())


def test_cancelling_a_put_stores_nothing(server):
    sent_first = threading.Event()
    release = threading.Event()

    def batches():
        yield pa.record_batch({"x": [1]})
        sent_first.set()
        release.wait(10)
        yield pa.record_batch({"x": [2]})

    async def main():
        async with quiver.aio.connect(server.location) as aq:
            reader = pa.RecordBatchReader.from_batches(pa.schema([("x", pa.int64())]),
                                                       batches())
            task = asyncio.ensure_future(aq.put("c/half", reader, timeout=60))
            await asyncio.to_thread(sent_first.wait, 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task  # the cancellation has reached the call (not its thread)
            release.set()  # the source produces its next batch only now
            # Aborted before its next batch, not left to its 60 s deadline.
            await asyncio.to_thread(server.wait_for_log,
                                    "'c/half': the client aborted the put (Cancelled")
            with pytest.raises(quiver.NotFound):
                await aq.get("c/half")

    asyncio.run(main())


def test_fetch_artifacts_are_awaitable(artifact_server):
    import pyarrow.parquet as pq
    root = artifact_server.artifacts
    path = root / "a.parquet"
    pq.write_table(pa.table({"i": [1, 2]}), path)

    async def main():
        async with quiver.aio.connect(artifact_server.location) as aq:
            ok, missing = aq.fetch_artifacts([f"file://{path}", f"file://{root}/none.parquet"])
            assert (await ok).rows == 2
            with pytest.raises(quiver.NotFound, match="none.parquet"):
                await missing
            assert (await aq.get_artifact(f"file://{path}")).num_rows == 2

    asyncio.run(main())


def test_cancelling_a_query_read_through_the_client_cache(lite):
    """With a client cache, query() reads the whole result before it returns; cancelling
    the task cancels that stream and frees the thread."""
    watcher = quiver.connect(lite.location)

    async def main():
        async with quiver.aio.connect(lite.location, max_workers=1,
                                      cache=quiver.ClientCache()) as aq:
            task = asyncio.ensure_future(aq.query(STREAMING_SQL, source="lite", timeout=30))
            await asyncio.to_thread(wait_for, lambda: watcher.stats()["queries"]["executions"],
                                    what="the query to run")
            task.cancel()
            started = time.monotonic()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert (await asyncio.wait_for(aq.stats(), 10))["queries"]["executions"] == 1
            assert time.monotonic() - started < 10  # not the query's 30 s timeout

    asyncio.run(main())
    watcher.close()


def test_async_calls_take_the_sync_calls_arguments():
    import inspect
    names = [n for n, _ in inspect.getmembers(quiver.aio.AsyncClient, inspect.isfunction)
             if not n.startswith("_")]
    assert {"get", "put", "query", "info", "fetch_artifacts", "shrink"} <= set(names)
    for name in names:
        sync = getattr(quiver.Client, name)
        mine = inspect.signature(getattr(quiver.aio.AsyncClient, name)).parameters
        assert list(mine.values()) == list(inspect.signature(sync).parameters.values()), name
    sync_connect = inspect.signature(quiver.connect).parameters
    async_connect = inspect.signature(quiver.aio.connect).parameters
    assert list(async_connect)[:-1] == list(sync_connect) and list(async_connect)[-1] == \
        "max_workers"
    assert all(async_connect[n] == p for n, p in sync_connect.items())
