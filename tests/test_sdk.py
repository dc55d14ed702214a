"""The Python SDK (python/quiver) against the real quiver binary: every call of the sync
client, the data conversions, and each typed exception from a real server condition."""

import pickle
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pytest

from sdk_util import (PYTHON_DIR, SLOW_SQL, artifact_server, hung, lite,  # noqa: F401
                      make_events_db, q, sdk_env)
import quiver
from quiver_util import write_config
from query_util import wait_for

TABLE = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})
quiver_mod = quiver  # for tests whose `quiver` is the server-factory fixture


def quiver_connect(srv, **kwargs):
    return quiver_mod.connect(srv.location, **kwargs)


# -- objects ----------------------------------------------------------------------------
def test_put_get_update_and_versions(q, server):
    ref = q.put("s1/obj", TABLE)
    assert ref == quiver.ObjectRef(server.location, "s1/obj", 1)
    assert str(ref) == "s1/obj@1"
    assert q.get("s1/obj").equals(TABLE)

    ref2 = q.update(ref, TABLE.slice(1))
    assert ref2.version == 2
    got = q.get_with_meta("s1/obj")
    assert got.ref == ref2 and got.value.num_rows == 2
    assert q.get(ref).equals(TABLE)              # a ref reads its own version
    assert q.get("s1/obj", version=1).equals(TABLE)

    with pytest.raises(quiver.VersionConflict) as e:
        q.update(ref, TABLE)                     # ref is stale: the key is at 2
    assert e.value.current_version == 2
    assert "version conflict" in str(e.value) and "gRPC" not in str(e.value)
    assert isinstance(e.value.__cause__, pa.ArrowException)
    assert q.get("s1/obj").num_rows == 2         # the refused put stored nothing

    with pytest.raises(quiver.VersionConflict) as e:
        q.put("s1/obj", TABLE, if_version=0)     # create only
    assert e.value.current_version == 2
    assert q.put("s1/new", TABLE, if_version=0).version == 1


def test_streamed_put_and_conditional_get(q):
    schema = pa.schema([("x", pa.int64())])
    batches = [pa.record_batch([pa.array(range(i * 100, i * 100 + 100))], schema=schema)
               for i in range(5)]
    ref = q.put("s1/stream", pa.RecordBatchReader.from_batches(schema, iter(batches)))
    table = q.get("s1/stream")
    assert table.num_rows == 500 and len(table.to_batches()) == 5
    assert table.column("x").to_pylist() == list(range(500))

    same = q._fetch("s1/stream", if_none_match=ref.version)
    assert same.status == "not_modified" and same.table is None and same.ref == ref
    newer = q.put("s1/stream", TABLE)
    fresh = q._fetch("s1/stream", if_none_match=ref.version)
    assert fresh.status == "ok" and fresh.ref == newer and fresh.table.equals(TABLE)

    empty = pa.table({"x": pa.array([], pa.int64())})
    assert q.put("s1/empty", empty).version == 1
    got = q.get_with_meta("s1/empty")
    assert got.value.num_rows == 0 and got.value.schema.equals(empty.schema)
    assert got.ref.version == 1


def _failing_generator():
    def batches():
        yield pa.record_batch({"x": [1, 2]})
        raise RuntimeError("source broke")

    return pa.RecordBatchReader.from_batches(pa.schema([("x", pa.int64())]), batches())


def _csv_with_a_bad_last_row(workdir):
    """A streaming CSV reader whose first blocks parse and whose last row does not: the
    source raises ArrowInvalid after batches went out."""
    import pyarrow.csv as pacsv
    path = workdir / "bad.csv"
    path.write_text("x\n" + "".join(f"{i}\n" for i in range(5000)) + "oops\n")
    return pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=4096),
                          convert_options=pacsv.ConvertOptions(column_types={"x": pa.int64()}))


@pytest.mark.parametrize("source", ["generator", "csv"])
def test_a_failing_source_stores_nothing(q, server, workdir, source):
    q.put("s1/torn", TABLE)
    data = _failing_generator() if source == "generator" else _csv_with_a_bad_last_row(workdir)
    expected = RuntimeError if source == "generator" else pa.ArrowInvalid
    started = time.monotonic()
    with pytest.raises(expected) as e:
        q.put("s1/torn", data, timeout=60)
    # The source's own exception, unchanged; and at once, not at the put's deadline.
    assert not isinstance(e.value, quiver.QuiverError)
    assert time.monotonic() - started < 10
    server.wait_for_log("'s1/torn': the client aborted the put (", timeout=10)
    got = q.get_with_meta("s1/torn")  # the previous version, intact
    assert got.ref.version == 1 and got.value.equals(TABLE)


def test_a_failed_put_does_not_hold_the_process_at_exit(server):
    code = ("import pyarrow as pa, quiver\n"
            "def batches():\n"
            "    yield pa.record_batch({'x': [1]})\n"
            "    raise RuntimeError('source broke')\n"
            "r = pa.RecordBatchReader.from_batches(pa.schema([('x', pa.int64())]), batches())\n"
            f"c = quiver.connect({server.location!r})\n"
            "try:\n"
            "    c.put('s1/exit', r, timeout=120)\n"
            "except RuntimeError:\n"
            "    print('raised', flush=True)\n")
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=sdk_env(), timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "raised", out.stderr
    assert time.monotonic() - started < 30  # not the put's 120 s deadline


def test_bytes_pandas_polars_and_serializers(q):
    big = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: several chunks
    q.put("s1/bytes", big)
    assert q.get("s1/bytes") == big
    q.put("s1/nothing", b"")
    assert q.get("s1/nothing") == b""
    stored = q.get_with_meta("s1/bytes").value
    assert isinstance(stored, bytes)

    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1.5, 2.5, None], "b": ["x", "y", "z"]})
    q.put("s1/pandas", df)
    assert q.get("s1/pandas").to_pandas().equals(df)

    pl = pytest.importorskip("polars")
    pdf = pl.DataFrame({"a": [1, 2, 3], "b": ["p", "q", "r"]})
    q.put("s1/polars", pdf)
    assert pl.from_arrow(q.get("s1/polars")).equals(pdf)

    obj = {"model": [1, 2, 3], "nested": ("t", 1.5)}
    q.put("s1/pickled", obj, serializer=quiver.PickleSerializer())
    assert q.get("s1/pickled", serializer=quiver.PickleSerializer()) == obj
    with pytest.raises(quiver.SerializerError, match="serializer 'pickle'"):
        q.get("s1/pickled")  # never unpickled by default

    class Reversed:
        name = "reversed"

        def dumps(self, o):
            return pickle.dumps(o)[::-1]

        def loads(self, data):
            return pickle.loads(data[::-1])

    with pytest.raises(quiver.SerializerError, match="not 'reversed'"):
        q.get("s1/pickled", serializer=Reversed())
    q.put("s1/custom", [1, 2], serializer=Reversed())
    assert q.get("s1/custom", serializer=Reversed()) == [1, 2]
    with pytest.raises(TypeError, match="serializer="):
        q.put("s1/object", object())


def test_info_list_delete(q, server):
    q.put("s2/raw", TABLE, tags=["table:events"])
    q.put("s2/derived", TABLE.slice(1), depends_on=["s2/raw"])
    info = q.info("s2/derived")
    assert (info.key, info.version, info.rows) == ("s2/derived", 1, 2)
    assert info.bytes > 0 and info.schema.equals(TABLE.schema)
    assert info.depends_on == ("s2/raw",) and q.info("s2/raw").tags == ("table:events",)
    assert info.created is not None and info.created.tzinfo is not None
    assert info.ref == quiver.ObjectRef(server.location, "s2/derived", 1)

    q.put("s3/x", TABLE)
    listed = q.list("s2/")
    assert [i.key for i in listed] == ["s2/derived", "s2/raw"]
    assert listed[1].rows == 3 and listed[1].version == 1
    assert {i.key for i in q.list()} == {"s2/derived", "s2/raw", "s3/x"}

    gone = q.delete("s3/x")
    assert gone.keys == ("s3/x",) and gone.versions == 1 and gone
    assert not q.delete("s3/x")
    assert set(q.delete_prefix("s2").keys) == {"s2/derived", "s2/raw"}
    assert q.list() == []


def test_cost_s_reaches_the_entry(q):
    q.put("s2/costly", TABLE, cost_s=2.5)
    assert q.info("s2/costly").cost_s == pytest.approx(2.5)


# -- management -------------------------------------------------------------------------
def test_management_calls(q):
    q.put("m/raw", TABLE, tags=["t:raw"])
    q.put("m/clean", TABLE, depends_on=["m/raw"])
    q.put("m/report", TABLE, depends_on=["m/clean"])
    q.put("m/other", TABLE)

    assert q.stats()["puts"] == 4
    entries = q.entries()
    assert entries.column("key").to_pylist() == ["m/clean", "m/other", "m/raw", "m/report"]
    assert q.entries(prefix="m/r").num_rows == 2

    would = q.shrink(below_bytes=0, dry_run=True)
    assert would.dry_run and set(would.keys) == {"m/raw", "m/clean", "m/report", "m/other"}
    assert q.entries().num_rows == 4
    with pytest.raises(ValueError):
        q.shrink()

    assert q.invalidate("m/clean").keys == ("m/clean", "m/report")
    assert q.invalidate_tag("t:raw").keys == ("m/raw",)
    one = q.shrink(one=True)
    assert one.keys == ("m/other",) and not one.dry_run
    assert q.entries().num_rows == 0

    assert q.config_get("half_life") == 1000
    settings = q.config_set("memory_size", "4MiB")
    assert settings["memory_size"] == 4 * 2**20
    assert q.config_get()["memory_size"] == 4 * 2**20
    with pytest.raises(KeyError):
        q.config_get("no_such_setting")
    with pytest.raises(quiver.InvalidRequest):
        q.config_set("half_life", -1)


# -- queries ----------------------------------------------------------------------------
AGG = "SELECT grp, count(*) AS n, sum(amount) AS total FROM events GROUP BY grp ORDER BY grp"


def test_query_miss_then_hit(lite):
    with quiver.connect(lite.location) as q:
        first = q.query(AGG, source="lite", ttl=60)
        assert first.meta.miss and not first.meta.hit and len(first.meta.key) == 64
        table = first.read_all()
        assert table.column("n").to_pylist() == [250] * 4
        assert first.read_all() is table

        wait_for(lambda: q.stats()["entries"] == 1, what="the result to be cached")
        again = q.query(AGG, source="lite", ttl=60)
        meta = again.meta
        assert meta.hit and meta.key == first.meta.key and meta.exec_s is not None
        assert meta.created <= meta.expires and meta.cached
        assert (meta.expires - meta.created).total_seconds() == pytest.approx(60, abs=1)
        df = again.to_pandas()
        assert list(df["grp"]) == ["g0", "g1", "g2", "g3"]

        rows = q.query("SELECT id FROM events WHERE id <= ? ORDER BY id", source="lite",
                       params=[300])
        reader = rows.reader()
        assert isinstance(reader, pa.RecordBatchReader)
        assert reader.read_all().column("id").to_pylist() == list(range(1, 301))
        with pytest.raises(RuntimeError, match="already read"):
            rows.read_all()

        none = q.query("SELECT id FROM events WHERE id < 0", source="lite")
        # No batch, so nowhere for the server to put the metadata (docs/python.md).
        assert none.meta.cache == "" and none.meta.raw == {}
        assert none.read_all().num_rows == 0
        assert none.read_all().schema.names == ["id"]

        preview = q.query(AGG, source="lite", preview=True)
        assert preview.meta.cache == "bypass" and preview.meta.reason == "preview"
        assert preview.read_all().equals(table)

        with pytest.raises(quiver.InvalidRequest):
            q.query("SELECT 1", source="lite", ttl=-5)
        with pytest.raises(quiver.QuiverError, match="nope"):
            q.query("SELECT * FROM nope", source="lite").read_all()


# -- errors from real server conditions ---------------------------------------------------
def test_not_found_and_invalid_request(q):
    with pytest.raises(quiver.NotFound, match="no object 'x/missing'") as e:
        q.get("x/missing")
    assert isinstance(e.value.__cause__, KeyError)
    with pytest.raises(quiver.NotFound):
        q.get("x/missing", version=3)
    with pytest.raises(quiver.NotFound):
        q.info("x/missing")
    with pytest.raises(quiver.InvalidRequest, match="2 segments") as e:
        q.put("no-slash", TABLE)
    assert "gRPC client debug context" not in str(e.value)
    with pytest.raises(quiver.InvalidRequest, match="depends_on"):
        q.put("x/y", TABLE, depends_on=["bad key"])


def test_too_large_and_not_admitted(quiver, workdir):
    big = pa.table({"x": pa.array(range(20_000), pa.int64())})  # ~160 KiB
    srv = quiver(args=["--max-object-bytes", "64KiB"])
    with quiver_connect(srv) as q:
        with pytest.raises(quiver_mod.TooLarge) as e:
            q.put("big/one", big)
        assert not isinstance(e.value, quiver_mod.NotAdmitted)
        assert e.value.setting == "max_object_bytes" and e.value.limit == 64 * 1024
        assert e.value.details["error"] == "too_large" and "Detail" not in str(e.value)
        with pytest.raises(quiver_mod.NotFound):
            q.get("big/one")

    srv = quiver(args=["--cache-size", "64KiB"])  # larger than the whole cache
    with quiver_connect(srv) as q:
        with pytest.raises(quiver_mod.TooLarge, match="cache_size") as e:
            q.put("big/two", big)
        assert e.value.setting == "cache_size" and e.value.limit == 64 * 1024

    # Room only by evicting entries younger than protect_s: not admitted.
    config = write_config(workdir, "protect.json", {"protect_s": 3600, "cache_size": "400KiB"})
    srv = quiver(args=["--config", str(config)])
    with quiver_connect(srv) as q:
        q.put("big/a", big)
        q.put("big/b", big)
        with pytest.raises(quiver_mod.NotAdmitted, match="not admitted") as e:
            q.put("big/c", big)
        assert isinstance(e.value, quiver_mod.TooLarge)
        assert e.value.details["error"] == "not_admitted"
        assert [o.key for o in q.list("big/")] == ["big/a", "big/b"]


def test_unavailable_when_the_server_is_stopped(server):
    with quiver.connect(server.location, timeout=5) as q:
        q.put("u/a", TABLE)
        server.stop()
        with pytest.raises(quiver.Unavailable):
            q.get("u/a")
        with pytest.raises(quiver.Unavailable):
            q.stats()


def test_timeout_on_a_slow_query(lite):
    with quiver.connect(lite.location) as q:
        started = time.monotonic()
        with pytest.raises(quiver.Timeout):
            q.query(SLOW_SQL, source="lite", preview=True, timeout=0.5).read_all()
        assert time.monotonic() - started < 5
        assert q.stats()["queries"]["bypasses"] == 1  # the connection still works
    with pytest.raises(ValueError):
        quiver.connect(lite.location, timeout=0)
    with pytest.raises(ValueError):
        quiver.connect(lite.location, timeout=float("inf"))


def test_busy_when_the_source_queue_is_full(quiver, workdir):
    db = make_events_db(workdir / "events.db")
    config = write_config(workdir, "q.json", {"sources": {"lite": {
        "driver": "sqlite", "uri": str(db), "max_concurrent": 1, "max_queue": 0}}})
    srv = quiver(args=["--config", str(config)])
    q = quiver_connect(srv)
    errors = []

    def slow():
        try:  # a preview: the execution stops when this reader times out
            q.query(SLOW_SQL, source="lite", preview=True, timeout=3).read_all()
        except quiver_mod.QuiverError as e:
            errors.append(e)

    t = threading.Thread(target=slow)
    t.start()
    try:
        wait_for(lambda: q.stats()["queries"]["executions"] == 1, what="the slow query")
        with pytest.raises(quiver_mod.Busy, match="queued") as e:
            q.query("SELECT 1 AS one", source="lite")
        assert isinstance(e.value, quiver_mod.Unavailable)
        assert e.value.details["setting"] == "max_queue" and e.value.details["limit"] == 0
    finally:
        t.join()
        q.close()
    assert len(errors) == 1 and isinstance(errors[0], quiver_mod.Timeout)


def test_cancelled_when_a_dependency_is_invalidated_mid_put(q, server):
    q.put("c/dep", TABLE)
    other = quiver.connect(server.location)

    def batches():
        yield pa.record_batch({"x": [1]})
        # The put has begun on the server (its temp file exists) before the invalidation.
        wait_for(lambda: server.tmp_files(), what="the put to begin on the server")
        assert other.invalidate("c/dep").keys == ("c/dep",)
        yield pa.record_batch({"x": [2]})

    reader = pa.RecordBatchReader.from_batches(pa.schema([("x", pa.int64())]), batches())
    with pytest.raises(quiver.Cancelled, match="not committed"):
        q.put("c/derived", reader, depends_on=["c/dep"])
    other.close()
    with pytest.raises(quiver.NotFound):
        q.get("c/derived")


def test_token_and_endpoint_forms(server):
    host_port = server.location[len("grpc://"):]
    with quiver.connect(host_port, token="secret") as q:  # the server ignores it until auth
        assert q.endpoint == server.location
        assert q.put("t/a", TABLE).version == 1
    with pytest.raises(ValueError, match="scheme"):
        quiver.connect("http://" + host_port)
    with quiver.connect(host_port, tls=True) as tls_client:
        assert tls_client.endpoint == "grpc+tls://" + host_port
        with pytest.raises(quiver.Unavailable):  # the test server speaks plain gRPC
            tls_client.stats(timeout=5)
    with pytest.raises(ValueError, match="contradicts"):
        quiver.connect("grpc+tls://" + host_port, tls=False)


# -- artifacts ----------------------------------------------------------------------------
def test_fetch_artifacts(artifact_server):
    import pyarrow.parquet as pq
    root = artifact_server.artifacts
    paths = []
    for i in range(3):
        path = root / f"a{i}.parquet"
        pq.write_table(pa.table({"i": [i] * (i + 1)}), path)
        paths.append(f"file://{path}")
    with quiver.connect(artifact_server.location) as q:
        futures = q.fetch_artifacts(paths + [f"file://{root}/missing.parquet"], ttl=60)
        infos = [f.result(timeout=30) for f in futures[:3]]
        assert [i.rows for i in infos] == [1, 2, 3] and all(i.key for i in infos)
        assert [i.cache for i in infos] == ["miss"] * 3
        with pytest.raises(quiver.NotFound, match="missing.parquet"):
            futures[3].result(timeout=30)
        assert q.fetch_artifacts(paths[:1])[0].result(timeout=30).cache == "hit"
        assert q.get_artifact(paths[2]).num_rows == 3
        with pytest.raises(quiver.InvalidRequest, match="not allowed|allowed_prefixes"):
            q.get_artifact("file:///etc/passwd")


def test_fetch_artifacts_timeout_counts_from_submission_and_close_names_what_it_cancelled(
        server):
    with quiver.connect(server.location, artifact_workers=1) as q:
        q.stats()  # connected before the server stops answering
        with hung(server):
            started = time.monotonic()
            first, second = q.fetch_artifacts(["file:///a.parquet", "file:///b.parquet"],
                                              timeout=1.5)
            with pytest.raises(quiver.Timeout, match="a.parquet"):
                first.result(timeout=30)
            with pytest.raises(quiver.Timeout, match="b.parquet.*waited for a worker"):
                second.result(timeout=30)
            assert time.monotonic() - started < 2.7  # not 1.5 s more for the second
            third, *queued = q.fetch_artifacts(
                ["file:///c.parquet", "file:///d.parquet", "file:///e.parquet"], timeout=1.5)
            q.close()
        # Started before close() (its timeout) or not (cancelled): either way, named.
        with pytest.raises((quiver.Timeout, quiver.Cancelled), match="c.parquet"):
            third.result(timeout=0)
        for future, name in zip(queued, ("d.parquet", "e.parquet")):
            with pytest.raises(quiver.Cancelled, match=f"{name}.*closed"):
                future.result(timeout=0)


# -- typing -------------------------------------------------------------------------------
def test_the_sdk_is_mypy_strict_clean():
    out = subprocess.run([sys.executable, "-m", "mypy", "--config-file",
                          str(PYTHON_DIR / "pyproject.toml"), str(PYTHON_DIR / "quiver")],
                         capture_output=True, text=True, cwd=PYTHON_DIR)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success" in out.stdout
