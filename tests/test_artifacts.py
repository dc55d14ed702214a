"""Artifacts: files fetched through Arrow's filesystems, cached with a TTL, on a bounded pool.

A real quiver binary reads files made with pyarrow from a local directory (and from a real
s3proxy). Slow fetches are made deterministic with an s3proxy of this module's own that a test
pauses (SIGSTOP): a fetch of an s3:// artifact then waits in its request, holding its worker,
until the test resumes the server (SIGCONT), and then completes normally.
"""

import contextlib
import json
import os
import signal
import threading
import time

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.flight as flight
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

from quiver_util import action, get, stats, write_config
from query_util import wait_for
from s3_util import boto3_client
from s3proxy import S3Proxy, s3proxy_jar

CSV_TEXT = b"id,name\n1,one\n2,two\n3,three\n"


def sample(n=100, offset=0):
    return pa.table({"id": pa.array(range(offset, offset + n), pa.int64()),
                     "name": pa.array([f"row-{i}" for i in range(offset, offset + n)])})


@pytest.fixture
def files(workdir):
    """A directory of artifacts in every format, and one outside the allowed directory."""
    root = workdir / "artifacts"
    root.mkdir()
    t = sample()
    pq.write_table(t, root / "t.parquet", row_group_size=30)
    feather.write_feather(t, root / "t.feather")
    with pa.ipc.new_stream(root / "t.arrows", t.schema) as w:
        w.write_table(t)
    pacsv.write_csv(t, root / "t.csv")
    with open(root / "t.jsonl", "w") as f:
        for row in t.to_pylist():
            f.write(json.dumps(row) + "\n")
    (root / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet at all")
    secret = workdir / "secret"
    secret.mkdir()
    pacsv.write_csv(t, secret / "s.csv")
    return root


def start(quiver, workdir, root, **artifacts):
    config = {"artifacts": {"allowed_prefixes": [f"file://{root}/"], **artifacts}}
    return quiver(["--config", str(write_config(workdir, "artifacts.json", config))])


def url(path):
    return f"file://{path}"


def ticket(u, **fields):
    return json.dumps({"artifact": u, **fields})


def fetch(client, u, **fields):
    return action(client, "artifact-fetch", {"artifact": u, **fields})


def artifact_stats(client):
    return stats(client)["artifacts"]


@pytest.fixture(scope="module")
def held_s3(tmp_path_factory):
    """An s3proxy of this module's own, which tests pause, with a bucket holding s.parquet
    (rows 0-49) and s2.parquet (rows 50-99) under reports/."""
    if s3proxy_jar() is None:
        pytest.skip("s3proxy is not available (no java, or no jar in .tools/s3proxy)")
    proxy = S3Proxy(work_dir=tmp_path_factory.mktemp("held-s3proxy"), heap="256m").start()
    client = boto3_client(proxy)
    proxy.bucket = proxy.make_bucket()
    for name, offset in (("s.parquet", 0), ("s2.parquet", 50)):
        sink = pa.BufferOutputStream()
        pq.write_table(sample(50, offset), sink)
        client.put_object(Bucket=proxy.bucket, Key=f"reports/{name}",
                          Body=sink.getvalue().to_pybytes())
    yield proxy
    proxy.stop()


@contextlib.contextmanager
def paused(proxy):
    """The s3proxy stopped (SIGSTOP): a request to it waits -- its connection is accepted by
    the kernel, nothing answers -- until the block ends (SIGCONT), then is answered."""
    proxy.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        proxy.proc.send_signal(signal.SIGCONT)


def start_with_s3(quiver, workdir, root, proxy, **artifacts):
    """A server allowing `root` and the held s3proxy's reports/; its S3 requests wait long
    enough (60 s) for a paused server not to make them fail."""
    config = {"s3": {"region": proxy.region, "endpoint": proxy.endpoint,
                     "ca_file": str(proxy.ca_file), "access_key": proxy.access_key,
                     "secret_key": proxy.secret_key, "connect_timeout_s": 60,
                     "request_timeout_s": 60},
              "artifacts": {"allowed_prefixes": [f"file://{root}/",
                                                 f"s3://{proxy.bucket}/reports/"],
                            **artifacts}}
    return quiver(["--config", str(write_config(workdir, "artifacts-s3.json", config))])


def expected(root, name):
    path = root / name
    if name.endswith(".parquet"):
        return pq.read_table(path)
    if name.endswith(".feather"):
        return feather.read_table(path)
    if name.endswith(".arrows"):
        return pa.ipc.open_stream(path.read_bytes()).read_all()
    if name.endswith(".csv"):
        return pacsv.read_csv(path)
    return pajson.read_json(path)


@pytest.mark.parametrize("name", ["t.parquet", "t.feather", "t.arrows", "t.csv", "t.jsonl"])
def test_first_request_misses_then_hits_with_equal_content(quiver, workdir, files, name):
    srv = start(quiver, workdir, files)
    c = srv.client()
    first, meta1, _, _ = get(c, ticket(url(files / name)))
    assert meta1["cache"] == "miss" and meta1["joined"] is False
    # The fill publishes after its last batch is sent: wait for that, not for the stream.
    wait_for(lambda: stats(c)["entries"] == 1, what="the fetch to be cached")
    second, meta2, _, _ = get(c, ticket(url(files / name)))
    assert meta2["cache"] == "hit" and meta2["key"] == meta1["key"]
    want = expected(files, name)
    assert first.equals(want) and second.equals(want)
    origin = second.schema.metadata
    assert origin[b"quiver.artifact.url"] == url(files / name).encode()
    assert int(origin[b"quiver.artifact.size"]) == (files / name).stat().st_size
    s = artifact_stats(c)
    assert (s["fetches"], s["misses"], s["hits"]) == (1, 1, 1)


def test_flight_info_then_doget_and_the_fetch_action(quiver, workdir, files):
    srv = start(quiver, workdir, files)
    c = srv.client()
    u = url(files / "t.parquet")
    info = c.get_flight_info(flight.FlightDescriptor.for_command(ticket(u, ttl_s=120)))
    meta = json.loads(info.app_metadata)
    assert meta["cache"] == "miss" and meta["expires_ms"] - meta["created_ms"] == 120_000
    table, _, _, _ = get(c, info.endpoints[0].ticket.ticket)
    assert table.equals(pq.read_table(files / "t.parquet"))

    fetched = fetch(c, u)
    st = (files / "t.parquet").stat()
    assert fetched["cache"] == "hit" and fetched["key"] == meta["key"]
    assert fetched["rows"] == 100 and fetched["bytes"] > 0
    assert fetched["mtime_ms"] == st.st_mtime_ns // 1_000_000
    assert fetched["size"] == st.st_size and "etag" not in fetched
    assert fetched["expires_ms"] == meta["expires_ms"]

    # The same file as another format is another artifact; the fetch waits until it is cached.
    as_csv = fetch(c, url(files / "t.csv"), ttl_s=60)
    assert as_csv["cache"] == "miss" and as_csv["format"] == "csv" and as_csv["rows"] == 100
    assert fetch(c, url(files / "t.csv"))["cache"] == "hit"


def test_concurrent_requests_for_one_artifact_fetch_it_once(quiver, workdir, files, held_s3):
    srv = start_with_s3(quiver, workdir, files, held_s3)
    c = srv.client()
    u = f"s3://{held_s3.bucket}/reports/s.parquet"
    tables = []

    def one():
        tables.append(get(srv.client(), ticket(u))[0])

    threads = [threading.Thread(target=one) for _ in range(8)]
    with paused(held_s3):
        for t in threads:
            t.start()
        # Every request arrived (one leads, seven joined) while the one fetch waits on S3.
        wait_for(lambda: (lambda s: s["misses"] + s["joins"] == 8 and s["in_flight"] == 1)(
            artifact_stats(c)), what="8 requests on one fetch", timeout=20)
    for t in threads:
        t.join(30)
    # One fetch, one outcome for all eight.
    assert len(tables) == 8 and all(t.equals(sample(50)) for t in tables)
    s = artifact_stats(c)
    assert (s["fetches"], s["misses"], s["joins"], s["failures"]) == (1, 1, 7, 0)


def test_concurrent_requests_share_one_fetch_and_its_result(quiver, workdir, files):
    srv = start(quiver, workdir, files)
    c = srv.client()
    barrier = threading.Barrier(8)
    results = []

    def one():
        client = srv.client()
        barrier.wait()
        results.append(fetch(client, url(files / "t.parquet")))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 8 and len({r["key"] for r in results}) == 1
    assert sorted(r["cache"] for r in results).count("miss") == 1
    assert artifact_stats(c)["fetches"] == 1


def test_a_full_queue_refuses_with_busy(quiver, workdir, files, held_s3):
    srv = start_with_s3(quiver, workdir, files, held_s3, max_workers=1, max_queue=1)
    c = srv.client()
    outcomes = {}

    def request(name):
        outcomes[name] = fetch(srv.client(), f"s3://{held_s3.bucket}/reports/{name}")

    threads = [threading.Thread(target=request, args=(name,))
               for name in ("s.parquet", "s2.parquet")]
    with paused(held_s3):
        threads[0].start()
        wait_for(lambda: artifact_stats(c)["in_flight"] == 1,
            what="the first fetch on the worker", timeout=20)
        threads[1].start()
        wait_for(lambda: artifact_stats(c)["queued"] == 1,
            what="the second fetch in the queue", timeout=20)

        with pytest.raises(flight.FlightUnavailableError) as refused:
            fetch(c, url(files / "t.csv"))
        assert json.loads(refused.value.extra_info)["error"] == "busy"
        assert "busy" in str(refused.value) and "t.csv" in str(refused.value)
        assert artifact_stats(c)["busy"] == 1
    for t in threads:
        t.join(30)
    assert outcomes["s.parquet"]["rows"] == 50 and outcomes["s2.parquet"]["rows"] == 50
    # Room again: the refused artifact can be fetched now.
    assert fetch(c, url(files / "t.csv"))["cache"] == "miss"


def test_a_fetch_past_its_timeout_fails_and_caches_nothing(quiver, workdir, files, held_s3):
    srv = start_with_s3(quiver, workdir, files, held_s3, timeout_s=0.5)
    c = srv.client()
    u = f"s3://{held_s3.bucket}/reports/s.parquet"
    with paused(held_s3):
        with pytest.raises(flight.FlightTimedOutError, match="s.parquet.*timed out"):
            get(c, ticket(u))
        s = artifact_stats(c)
        assert s["timeouts"] == 1 and s["failures"] == 1 and s["in_flight"] == 1
    # The held request is answered once the server resumes; its table is dropped, not cached.
    wait_for(lambda: artifact_stats(c)["in_flight"] == 0,
        what="the timed-out fetch to end", timeout=20)
    assert stats(c)["entries"] == 0
    again = fetch(c, u)
    assert again["cache"] == "miss" and again["rows"] == 50


def test_a_pipe_is_refused_at_once_and_blocks_no_worker(quiver, workdir, files):
    srv = start(quiver, workdir, files, max_workers=1, max_queue=0)
    c = srv.client()
    os.mkfifo(files / "pipe.csv")  # nobody writes it: opening or reading it would block
    for _ in range(2):
        with pytest.raises(pa.ArrowInvalid, match="pipe.csv.*not a regular file"):
            fetch(c, url(files / "pipe.csv"))
    assert fetch(c, url(files / "t.csv"))["rows"] == 100  # the one worker is free
    assert artifact_stats(c)["in_flight"] == 0


def test_a_file_swapped_for_a_symlink_after_its_check_is_not_served(quiver, workdir, files,
                                                                     held_s3):
    """The reviewer's scenario: allowed/swap.csv is a regular file when its request is
    checked, and a symlink to a secret outside the allowed directory by the time the (one)
    worker opens it."""
    srv = start_with_s3(quiver, workdir, files, held_s3, max_workers=1, max_queue=1)
    c = srv.client()
    swap = files / "swap.csv"
    swap.write_bytes(CSV_TEXT)
    secret = workdir / "secret" / "s.csv"
    outcomes = {}

    def held():
        outcomes["held"] = fetch(srv.client(), f"s3://{held_s3.bucket}/reports/s.parquet")

    def swapped():
        try:
            outcomes["swapped"] = get(srv.client(), ticket(url(swap)))[0]
        except pa.ArrowInvalid as e:
            outcomes["swapped"] = e

    threads = [threading.Thread(target=held), threading.Thread(target=swapped)]
    with paused(held_s3):
        threads[0].start()
        wait_for(lambda: artifact_stats(c)["in_flight"] == 1, what="the worker held", timeout=20)
        threads[1].start()
        wait_for(lambda: artifact_stats(c)["queued"] == 1,
            what="swap.csv checked and queued", timeout=20)
        swap.unlink()
        swap.symlink_to(secret)
    for t in threads:
        t.join(30)
    assert outcomes["held"]["rows"] == 50
    refused = outcomes["swapped"]
    assert isinstance(refused, pa.ArrowInvalid), refused
    assert "swap.csv" in str(refused) and "symbolic link" in str(refused)
    assert "row-" not in str(refused)
    assert stats(c)["entries"] == 1  # the s3 artifact only: nothing of the secret is cached
    with pytest.raises(pa.ArrowInvalid, match="not allowed"):  # checked again: refused
        get(c, ticket(url(swap)))


def test_a_parquet_file_cannot_forge_its_provenance(quiver, workdir, files):
    srv = start(quiver, workdir, files)
    c = srv.client()
    path = files / "forged.parquet"
    forged = {"quiver.artifact.url": "s3://trusted/report.parquet",
              "quiver.artifact.etag": '"trusted-etag"', "quiver.artifact.size": "1",
              "quiver.artifact.mtime_ms": "1", "owner": "kept"}
    pq.write_table(sample(5).replace_schema_metadata(forged), path)
    fetched = fetch(c, url(path))
    assert "etag" not in fetched  # a local file has none
    assert fetched["size"] == path.stat().st_size
    assert fetched["mtime_ms"] == path.stat().st_mtime_ns // 1_000_000
    origin = get(c, ticket(url(path)))[0].schema.metadata
    assert origin[b"quiver.artifact.url"] == url(path).encode()
    assert b"quiver.artifact.etag" not in origin and origin[b"owner"] == b"kept"


def assert_too_large(error, name, limit, why):
    assert isinstance(error, flight.FlightServerError), error
    assert json.loads(error.extra_info) == {"error": "too_large", "setting": "max_entry_bytes",
                                            "limit": limit}
    assert name in str(error) and why in str(error), str(error)


def test_artifacts_larger_than_max_entry_bytes_are_refused_as_too_large(quiver, workdir, files):
    limit = 100_000
    config = {"max_entry_bytes": limit, "artifacts": {"allowed_prefixes": [f"file://{files}/"]}}
    srv = quiver(["--config", str(write_config(workdir, "small.json", config))])
    c = srv.client()
    # A file larger than the limit is refused before it is read.
    big = files / "big.csv"
    big.write_bytes(b"v\n" + b"1\n" * 60_000)
    with pytest.raises(flight.FlightServerError) as refused:
        fetch(c, url(big))
    assert_too_large(refused.value, "big.csv", limit, "the file is 120002 bytes")
    # A small file whose data passes the limit (200,000 zeros: a few kB of Parquet, 1.6 MB of
    # int64) is refused once what was read passes it.
    packed = files / "packed.parquet"
    pq.write_table(pa.table({"v": pa.array([0] * 200_000, pa.int64())}), packed,
                   row_group_size=20_000)
    assert packed.stat().st_size < limit
    for request in (lambda: fetch(c, url(packed)), lambda: get(c, ticket(url(packed)))):
        with pytest.raises(flight.FlightServerError) as refused:
            request()
        assert_too_large(refused.value, "packed.parquet", limit, "its data passed")
    assert stats(c)["entries"] == 0
    assert fetch(c, url(files / "t.csv"))["rows"] == 100  # a small one is still served


def test_a_fetched_artifact_too_large_to_store_is_a_too_large_error(quiver, workdir, files):
    """Data just within the limit, whose entry (schema message and framing included) is not:
    it is read, then not cached -- artifact-fetch says so as a too-large error."""
    batch = pacsv.read_csv(files / "t.csv").to_batches()[0]
    limit = pa.ipc.get_record_batch_size(batch) + 16
    config = {"max_entry_bytes": limit, "artifacts": {"allowed_prefixes": [f"file://{files}/"]}}
    c = quiver(["--config", str(write_config(workdir, "edge.json", config))]).client()
    with pytest.raises(flight.FlightServerError) as refused:
        fetch(c, url(files / "t.csv"))
    assert_too_large(refused.value, "t.csv", limit, "too large to cache")
    assert stats(c)["entries"] == 0


def test_missing_file_is_not_found(quiver, workdir, files):
    srv = start(quiver, workdir, files)
    c = srv.client()
    with pytest.raises(pa.ArrowKeyError, match="none.parquet.*not found"):
        get(c, ticket(url(files / "none.parquet")))
    with pytest.raises(pa.ArrowKeyError, match="none.parquet"):
        fetch(c, url(files / "none.parquet"))
    assert stats(c)["entries"] == 0


def test_corrupt_file_is_invalid_and_nothing_is_cached(quiver, workdir, files):
    srv = start(quiver, workdir, files)
    c = srv.client()
    with pytest.raises(pa.ArrowInvalid, match="corrupt.parquet.*cannot read it as parquet"):
        get(c, ticket(url(files / "corrupt.parquet")))
    # A CSV read as JSON is as unreadable.
    with pytest.raises(pa.ArrowInvalid, match="t.csv.*as json"):
        fetch(c, url(files / "t.csv"), format="json")
    assert stats(c)["entries"] == 0
    assert artifact_stats(c)["failures"] == 2
    leftovers = [p for p in srv.data_dir.rglob("*") if p.is_file() and "tmp" in p.name]
    assert leftovers == []


@pytest.mark.parametrize("bad", ["file:///etc/passwd", "{root}/../secret/s.csv",
                                 "{root}/t.csv?x=1", "/relative/or/bare/path.csv"])
def test_urls_outside_the_allowed_prefixes_are_refused(quiver, workdir, files, bad):
    srv = start(quiver, workdir, files)
    u = bad.format(root=url(files))
    with pytest.raises(pa.ArrowInvalid) as refused:
        get(srv.client(), ticket(u))
    assert u in str(refused.value)
    assert artifact_stats(srv.client())["fetches"] == 0


def test_nothing_is_allowed_by_default(quiver, files):
    srv = quiver()
    with pytest.raises(pa.ArrowInvalid, match="not allowed.*none configured"):
        fetch(srv.client(), url(files / "t.csv"))


def test_bad_requests_name_the_field(quiver, workdir, files):
    c = start(quiver, workdir, files).client()
    with pytest.raises(pa.ArrowInvalid, match="unknown artifact field 'sql'"):
        fetch(c, url(files / "t.csv"), sql="SELECT 1")
    with pytest.raises(pa.ArrowInvalid, match="unknown artifact format 'xls'"):
        fetch(c, url(files / "t.csv"), format="xls")
    (files / "t.data").write_bytes(CSV_TEXT)
    with pytest.raises(pa.ArrowInvalid, match="t.data.*name it in \"format\""):
        fetch(c, url(files / "t.data"))
    assert fetch(c, url(files / "t.data"), format="csv")["rows"] == 3


def test_a_changed_file_is_fetched_again_after_its_ttl(quiver, workdir, files):
    srv = start(quiver, workdir, files)
    c = srv.client()
    path = files / "changing.parquet"
    pq.write_table(sample(10), path)
    first = fetch(c, url(path), ttl_s=1)
    pq.write_table(sample(20, offset=1000), path)
    os.utime(path, ns=(first["mtime_ms"] * 1_000_000 + 5_000_000_000,) * 2)
    # Until it expires the cached copy is served, whatever the file holds now.
    assert get(c, ticket(url(path)))[0].num_rows == 10
    wait_for(lambda: time.time() * 1000 > first["expires_ms"] + 50,
        what="the TTL to pass", timeout=20)
    again = fetch(c, url(path), ttl_s=1)
    assert again["cache"] == "miss" and again["rows"] == 20
    assert again["mtime_ms"] == first["mtime_ms"] + 5000
    table = get(c, ticket(url(path)))[0]
    assert table.equals(pq.read_table(path))
    assert artifact_stats(c)["fetches"] == 2


def test_s3_artifacts_use_the_s3_settings(quiver, workdir, s3proxy):
    bucket = s3proxy.make_bucket()
    t = sample(50)
    sink = pa.BufferOutputStream()
    pq.write_table(t, sink)
    s3proxy.client.put_object(Bucket=bucket, Key="reports/t.parquet",
                              Body=sink.getvalue().to_pybytes())
    config = {"s3": {"region": s3proxy.region, "endpoint": s3proxy.endpoint,
                     "ca_file": str(s3proxy.ca_file), "access_key": s3proxy.access_key,
                     "secret_key": s3proxy.secret_key},
              "artifacts": {"allowed_prefixes": [f"s3://{bucket}/reports/"]}}
    srv = quiver(["--config", str(write_config(workdir, "s3.json", config))])
    c = srv.client()
    u = f"s3://{bucket}/reports/t.parquet"
    first = fetch(c, u)
    assert first["cache"] == "miss" and first["rows"] == 50
    assert first["etag"].strip('"') and first["size"] == len(sink.getvalue())
    table, meta, _, _ = get(c, ticket(u))
    assert meta["cache"] == "hit" and table.equals(t)
    with pytest.raises(pa.ArrowKeyError, match="none.parquet"):
        fetch(c, f"s3://{bucket}/reports/none.parquet")
    with pytest.raises(pa.ArrowInvalid, match="not allowed"):
        fetch(c, f"s3://{bucket}/other/t.parquet")
