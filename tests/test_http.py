"""The HTTP interface (docs/http.md) against the real binary, with requests, raw sockets and
curl: objects, queries, conditional requests, management routes, errors, keep-alive, TLS,
many readers, and clients that vanish or read slowly."""

import concurrent.futures
import json
import shutil
import socket
import sqlite3
import subprocess
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest
import requests

from quiver_util import put
from query_util import wait_for

ARROW = "application/vnd.apache.arrow.stream"


def table(n=1000, start=0):
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                     "name": pa.array([f"row{i}" for i in range(start, start + n)])})


def ipc_bytes(t):
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    return sink.getvalue().to_pybytes()


def read_ipc(body):
    return pa.ipc.open_stream(body).read_all()


@pytest.fixture
def web(quiver):
    return quiver(args=["--http", "127.0.0.1:0"])


@pytest.fixture
def lite_db(workdir):
    path = workdir / "small.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (id INTEGER, grp TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"g{i % 3}") for i in range(300)])
    con.commit()
    con.close()
    return path


def test_announces_http_after_flight(web):
    assert web.http_url.startswith("http://127.0.0.1:")
    r = requests.get(web.http_url + "/healthz", timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert requests.get(web.http_url + "/readyz", timeout=10).json()["status"] == "ready"
    assert r.headers["X-Request-Id"]


def test_flight_put_http_get_is_the_stored_bytes(web):
    t = table(5000)
    ref = put(web.client(), "s/obj", t)
    r = requests.get(f"{web.http_url}/v1/objects/s/obj", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == ARROW
    assert r.headers["Transfer-Encoding"] == "chunked"
    assert r.headers["ETag"].startswith(f'"{ref["version"]}.')
    assert r.headers["X-Quiver-Version"] == str(ref["version"])
    assert r.headers["Cache-Control"] == "no-cache"
    assert read_ipc(r.content).equals(t)
    # The body is the stored stream as it is: the blob on disk, byte for byte.
    blobs = [p for p in web.data_dir.rglob("*") if p.is_file() and p.read_bytes() == r.content]
    assert blobs, "the HTTP body is not the stored IPC stream"


def test_put_get_delete_and_versions(web):
    url = f"{web.http_url}/v1/objects/ns/s/o"
    r = requests.put(url, data=ipc_bytes(table(10)), headers={"Content-Type": ARROW}, timeout=10)
    assert r.status_code == 201, r.text
    assert r.json()["key"] == "ns/s/o" and r.json()["version"] == 1
    assert r.json()["endpoint"] == web.location
    r2 = requests.put(url, data=ipc_bytes(table(20)), timeout=10)
    assert r2.json()["version"] == 2
    # Flight sees what HTTP wrote.
    got = web.client().do_get(flight.Ticket(b"ns/s/o")).read_all()
    assert got.equals(table(20))
    old = requests.get(url, params={"version": 1}, timeout=10)
    assert read_ipc(old.content).equals(table(10))
    assert requests.delete(url, timeout=10).json() == {"deleted": "ns/s/o", "versions": 2}
    gone = requests.get(url, timeout=10)
    assert gone.status_code == 404 and "ns/s/o" in gone.json()["message"]
    assert requests.delete(url, timeout=10).status_code == 404


def test_if_none_match_304_and_if_match_cas(web):
    url = f"{web.http_url}/v1/objects/s/cas"
    first = requests.put(url, data=ipc_bytes(table(3)), timeout=10)
    etag = first.headers["ETag"]
    r = requests.get(url, headers={"If-None-Match": etag}, timeout=10)
    assert r.status_code == 304 and r.content == b""
    assert requests.get(url, headers={"If-None-Match": '"9.1"'}, timeout=10).status_code == 200
    # Compare-and-set: the current version wins once, a stale one is 412.
    ok = requests.put(url, data=ipc_bytes(table(4)), headers={"If-Match": '"1"'}, timeout=10)
    assert ok.status_code == 201 and ok.json()["version"] == 2
    stale = requests.put(url, data=ipc_bytes(table(5)), headers={"If-Match": '"1"'}, timeout=10)
    assert stale.status_code == 412, stale.text
    assert "version 2" in stale.json()["message"]
    stale_tag = requests.put(url, data=ipc_bytes(table(5)), headers={"If-Match": etag},
                             timeout=10)
    assert stale_tag.status_code == 412
    assert read_ipc(requests.get(url, timeout=10).content).equals(table(4))
    # After a delete the version number repeats; the old ETag must not say "not modified".
    requests.delete(url, timeout=10)
    requests.put(url, data=ipc_bytes(table(7)), timeout=10)
    again = requests.get(url, headers={"If-None-Match": etag}, timeout=10)
    assert again.status_code == 200 and read_ipc(again.content).equals(table(7))
    # Create-only.
    exists = requests.put(url, data=ipc_bytes(table(1)), headers={"If-None-Match": "*"},
                          timeout=10)
    assert exists.status_code == 409


def test_query_miss_then_hit_over_http(quiver, lite_db):
    srv = quiver(args=["--http", "127.0.0.1:0", "--source", f"lite=sqlite://{lite_db}"])
    body = json.dumps({"source": "lite", "sql": "SELECT grp, count(*) AS n FROM t GROUP BY grp "
                                                "ORDER BY grp", "ttl_s": 600})
    miss = requests.post(srv.http_url + "/v1/query", data=body, timeout=30)
    assert miss.status_code == 200, miss.text
    assert miss.headers["X-Quiver-Cache"] == "miss"
    expected = pa.table({"grp": ["g0", "g1", "g2"], "n": pa.array([100, 100, 100], pa.int64())})
    assert read_ipc(miss.content).equals(expected)
    key = miss.headers["X-Quiver-Key"]

    def hit():
        r = requests.post(srv.http_url + "/v1/query", data=body, timeout=30)
        return r if r.headers["X-Quiver-Cache"] == "hit" else None

    r = wait_for(hit, what="the result to be cached")
    assert r.headers["X-Quiver-Key"] == key
    assert read_ipc(r.content).equals(expected)
    assert r.headers["Cache-Control"].startswith("max-age=")
    assert int(r.headers["Cache-Control"].split("=")[1]) <= 600
    assert r.headers["Expires"].endswith("GMT")
    not_modified = requests.post(srv.http_url + "/v1/query", data=body,
                                 headers={"If-None-Match": r.headers["ETag"]}, timeout=30)
    assert not_modified.status_code == 304
    # The same result over Flight is a hit too (one cache behind both interfaces).
    info = srv.client().get_flight_info(flight.FlightDescriptor.for_command(body.encode()))
    assert json.loads(info.app_metadata)["cache"] == "hit"
    bad = requests.post(srv.http_url + "/v1/query",
                        data=json.dumps({"source": "lite", "sql": "SELECT * FROM nope"}),
                        timeout=30)
    assert bad.status_code == 400 and "nope" in bad.json()["message"]
    unknown = requests.post(srv.http_url + "/v1/query",
                            data=json.dumps({"source": "zzz", "sql": "SELECT 1"}), timeout=30)
    assert unknown.status_code in (400, 404) and "zzz" in unknown.json()["message"]


def test_entries_stats_and_actions(web):
    put(web.client(), "s/a", table(10))
    put(web.client(), "s/b", table(10))
    entries = read_ipc(requests.get(web.http_url + "/v1/entries", timeout=10).content)
    assert sorted(entries.column("key").to_pylist()) == ["s/a", "s/b"]
    only_a = read_ipc(requests.get(web.http_url + "/v1/entries", params={"prefix": "s/a"},
                                   timeout=10).content)
    assert only_a.column("key").to_pylist() == ["s/a"]
    stats = requests.get(web.http_url + "/v1/stats", timeout=10).json()
    assert stats["entries"] == 2 and stats["puts"] == 2
    as_arrow = requests.get(web.http_url + "/v1/stats", headers={"Accept": ARROW}, timeout=10)
    assert as_arrow.headers["Content-Type"] == ARROW
    rows = dict(zip(*read_ipc(as_arrow.content).to_pydict().values()))
    assert rows["entries"] == 2 and rows["puts"] == 2
    removed = requests.post(web.http_url + "/v1/actions/invalidate", data='{"key": "s/a"}',
                            timeout=10)
    assert removed.status_code == 200 and removed.json()["removed"] == ["s/a"]
    assert requests.get(web.http_url + "/v1/objects/s/a", timeout=10).status_code == 404
    unknown = requests.post(web.http_url + "/v1/actions/frobnicate", timeout=10)
    assert unknown.status_code == 404 and "frobnicate" in unknown.json()["message"]


def test_bad_requests_get_clear_4xx(web):
    u = web.http_url
    cases = [
        (requests.get, "/v1/objects/a//b", {}, 400, "key"),
        (requests.get, "/v1/objects/s/o", {"params": {"version": "x"}}, 400, "version"),
        (requests.get, "/v1/objects/s/o", {"params": {"colour": "red"}}, 400, "colour"),
        (requests.put, "/v1/objects/s/o", {"data": b"not arrow at all"}, 400, "Arrow IPC"),
        (requests.put, "/v1/objects/s/o", {"data": b""}, 400, "empty body"),
        (requests.put, "/v1/objects/s/o", {"data": ipc_bytes(table(3))[:-40]}, 400, ""),
        (requests.put, "/v1/objects/s/o",
         {"data": ipc_bytes(table(3)), "headers": {"Content-Type": "text/csv"}}, 400, "text/csv"),
        (requests.put, "/v1/objects/s/o",
         {"data": ipc_bytes(table(3)), "headers": {"If-Match": "3"}}, 400, "quoted"),
        (requests.post, "/v1/query", {"data": b"{not json"}, 400, ""),
        (requests.post, "/v1/query", {"data": b""}, 400, "JSON body"),
        (requests.get, "/v1/nothing-here", {}, 404, "no route"),
        (requests.get, "/v1/stats", {"params": {"format": "xml"}}, 400, "xml"),
    ]
    for call, path, kwargs, status, needle in cases:
        r = call(u + path, timeout=10, **kwargs)
        assert r.status_code == status, (path, kwargs, r.status_code, r.text)
        assert r.headers["Content-Type"] == "application/json", (path, r.headers)
        assert needle in r.json()["message"], (path, r.json())
    # Nothing half-written was kept from the bad puts.
    assert requests.get(u + "/v1/objects/s/o", timeout=10).status_code == 404
    assert requests.get(u + "/v1/stats", timeout=10).json()["entries"] == 0


def test_keep_alive_serves_many_requests_on_one_connection(web):
    put(web.client(), "s/k", table(10))
    port = int(web.http_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        f = sock.makefile("rb")
        for _ in range(3):
            sock.sendall(b"GET /v1/stats HTTP/1.1\r\nHost: x\r\n\r\n")
            status = f.readline()
            assert status.startswith(b"HTTP/1.1 200"), status
            length = None
            while (line := f.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            assert json.loads(f.read(length))["entries"] == 1


def test_sixty_four_concurrent_readers(web):
    t = table(50_000)
    put(web.client(), "s/hot", t)
    session_local = threading.local()

    def read(_):
        s = getattr(session_local, "s", None) or requests.Session()
        session_local.s = s
        r = s.get(f"{web.http_url}/v1/objects/s/hot", timeout=60)
        assert r.status_code == 200
        return read_ipc(r.content).equals(t)

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        assert all(pool.map(read, range(64)))


def big_object(web, key="s/big", rows=2_000_000):
    t = pa.table({"x": pa.array(range(rows), pa.int64())})
    put(web.client(), key, t)
    return t


def test_client_vanishing_mid_stream(web):
    t = big_object(web)
    port = int(web.http_url.rsplit(":", 1)[1])
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /v1/objects/s/big HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        # closed after the first bytes
    web.wait_for_log("HTTP body ended early", timeout=20)
    r = requests.get(f"{web.http_url}/v1/objects/s/big", timeout=60)
    assert read_ipc(r.content).equals(t)
    assert web.running()


def test_slow_reader_does_not_block_others(web):
    big_object(web)
    put(web.client(), "s/small", table(10))
    port = int(web.http_url.rsplit(":", 1)[1])
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", port))
    slow.sendall(b"GET /v1/objects/s/big HTTP/1.1\r\nHost: x\r\n\r\n")
    stop = threading.Event()

    def trickle():  # one byte a second
        while not stop.wait(1.0):
            try:
                if not slow.recv(1):
                    return
            except OSError:
                return

    reader = threading.Thread(target=trickle)
    reader.start()
    try:
        assert slow.recv(1)  # its response has started
        started = time.monotonic()
        for _ in range(20):
            r = requests.get(f"{web.http_url}/v1/objects/s/small", timeout=10)
            assert r.status_code == 200 and read_ipc(r.content).equals(table(10))
        assert time.monotonic() - started < 10
    finally:
        stop.set()
        slow.close()
        reader.join()


def test_curl(web):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    url = f"{web.http_url}/v1/objects/s/curl"
    body = ipc_bytes(table(42))
    put_out = subprocess.run([curl, "-sS", "-X", "PUT", "--data-binary", "@-", "-H",
                              f"Content-Type: {ARROW}", url], input=body, capture_output=True,
                             check=True)
    assert json.loads(put_out.stdout)["version"] == 1
    got = subprocess.run([curl, "-sS", "-D", "-", "-o", "-", url], capture_output=True,
                         check=True).stdout
    head, _, payload = got.partition(b"\r\n\r\n")
    assert b"200" in head.split(b"\r\n")[0]
    assert read_ipc(payload).equals(table(42))
    stats = subprocess.run([curl, "-sS", f"{web.http_url}/v1/stats"], capture_output=True,
                           check=True)
    assert json.loads(stats.stdout)["entries"] == 1
    deleted = subprocess.run([curl, "-sS", "-X", "DELETE", url], capture_output=True, check=True)
    assert json.loads(deleted.stdout)["versions"] == 1
    missing = subprocess.run([curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", url],
                             capture_output=True, check=True)
    assert missing.stdout == b"404"
    # The management routes, with curl too.
    put(web.client(), "s/c2", table(5))
    entries = subprocess.run([curl, "-sS", f"{web.http_url}/v1/entries"], capture_output=True,
                             check=True).stdout
    assert read_ipc(entries).column("key").to_pylist() == ["s/c2"]
    arrow_stats = subprocess.run([curl, "-sS", "-H", f"Accept: {ARROW}",
                                  f"{web.http_url}/v1/stats"], capture_output=True,
                                 check=True).stdout
    assert "entries" in read_ipc(arrow_stats).column("name").to_pylist()
    csv = subprocess.run([curl, "-sS", f"{web.http_url}/v1/objects/s/c2?format=csv"],
                         capture_output=True, check=True).stdout.decode()
    assert csv.splitlines()[0] == '"id","name"' and len(csv.splitlines()) == 6
    removed = subprocess.run([curl, "-sS", "-X", "POST", "-d", '{"key": "s/c2"}',
                              f"{web.http_url}/v1/actions/invalidate"], capture_output=True,
                             check=True).stdout
    # The object and, in the same cascade, its CSV encoding (a derived entry).
    removed = json.loads(removed)["removed"]
    assert "s/c2" in removed and len(removed) == 2, removed
    assert any(k.startswith("@q/") for k in removed), removed
    for path in ("/healthz", "/readyz", "/metrics", "/"):
        code = subprocess.run([curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                               web.http_url + path], capture_output=True, check=True).stdout
        assert code == b"200", path


@pytest.fixture
def tls_files(workdir):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_https(quiver, tls_files):
    cert, key = tls_files
    srv = quiver(args=["--http", "127.0.0.1:0", "--http-tls-cert", str(cert),
                       "--http-tls-key", str(key)])
    assert srv.http_url.startswith("https://127.0.0.1:")
    put(srv.client(), "s/tls", table(10))
    r = requests.get(f"{srv.http_url}/v1/objects/s/tls", verify=str(cert), timeout=10)
    assert r.status_code == 200 and read_ipc(r.content).equals(table(10))
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{srv.http_url}/v1/objects/s/tls", timeout=10)  # not a trusted CA


def test_bad_tls_files_refuse_to_start(quiver, workdir):
    bogus = workdir / "bogus.pem"
    bogus.write_text("not a certificate")
    srv = quiver(args=["--http", "127.0.0.1:0", "--http-tls-cert", str(bogus),
                       "--http-tls-key", str(bogus)], start=False)
    with pytest.raises(AssertionError):
        srv.start()
    assert "bogus.pem" in srv.log()


def test_head_sends_headers_only(web):
    ref = put(web.client(), "s/h", table(100))
    r = requests.head(f"{web.http_url}/v1/objects/s/h", timeout=10)
    assert r.status_code == 200 and r.content == b""
    assert r.headers["X-Quiver-Version"] == str(ref["version"])
    assert requests.head(f"{web.http_url}/v1/objects/s/none", timeout=10).status_code == 404


def test_chunked_upload_streams_into_a_put(web):
    t = table(200_000)
    body = ipc_bytes(t)

    def pieces():  # no Content-Length: Transfer-Encoding: chunked
        for i in range(0, len(body), 100_000):
            yield body[i:i + 100_000]

    r = requests.put(f"{web.http_url}/v1/objects/s/chunked", data=pieces(), timeout=60)
    assert r.status_code == 201, r.text
    got = requests.get(f"{web.http_url}/v1/objects/s/chunked", timeout=60)
    assert read_ipc(got.content).equals(t)


def test_malformed_request_line_and_headers(web):
    port = int(web.http_url.rsplit(":", 1)[1])
    for raw in [b"GARBAGE\r\n\r\n", b"GET /v1/stats HTTP/9.9\r\nHost: x\r\n\r\n"]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(raw)
            reply = sock.recv(65536)
            assert reply.startswith(b"HTTP/1.1 400"), (raw, reply[:200])
    # Still serving.
    assert requests.get(web.http_url + "/v1/stats", timeout=10).status_code == 200


# -- the data cache on HTTP: formats, slices, projections ------------------------------------

def sales(n=3000):
    return pa.table({"id": pa.array(range(n), pa.int64()),
                     "region": pa.array([["EU", "US", "APAC"][i % 3] for i in range(n)]),
                     "amount": pa.array([float(i % 97) for i in range(n)])})


def test_formats_equal_the_table(web):
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq
    t = sales()
    put(web.client(), "s/sales", t)
    url = f"{web.http_url}/v1/objects/s/sales"
    pqr = requests.get(url, headers={"Accept": "application/vnd.apache.parquet"}, timeout=30)
    assert pqr.status_code == 200, pqr.text
    assert pqr.headers["Content-Type"] == "application/vnd.apache.parquet"
    assert pq.read_table(pa.BufferReader(pqr.content)).equals(t)
    csv = requests.get(url, params={"format": "csv"}, timeout=30)
    assert csv.headers["Content-Type"].startswith("text/csv")
    # Text formats carry no types ("0.0" prints as 0): read them back with the table's.
    typed = pcsv.ConvertOptions(column_types=t.schema)
    assert pcsv.read_csv(pa.BufferReader(csv.content), convert_options=typed).equals(t)
    jsonl = requests.get(url, params={"format": "jsonl"}, timeout=30)
    as_t = pjson.ParseOptions(explicit_schema=t.schema)
    assert pjson.read_json(pa.BufferReader(jsonl.content), parse_options=as_t).equals(t)
    arrow_file = requests.get(url, params={"format": "arrow-file"}, timeout=30)
    assert pa.ipc.open_file(pa.BufferReader(arrow_file.content)).read_all().equals(t)
    # The Parquet encoding is a derived entry now: the second request is served from it.
    again = requests.get(url, headers={"Accept": "application/vnd.apache.parquet"}, timeout=30)
    assert pqr.headers["X-Quiver-View-Cache"] == "derived"
    assert again.headers["X-Quiver-View-Cache"] == "hit"
    assert again.content == pqr.content
    assert requests.get(url, headers={"Accept": "image/png"}, timeout=30).status_code == 406


def test_slices_and_projections_equal_pyarrow_compute(web):
    import pyarrow.compute as pc
    t = sales()
    put(web.client(), "s/sales", t)
    url = f"{web.http_url}/v1/objects/s/sales"
    r = requests.get(url, params={"columns": "id,amount", "filter": "region = 'EU' and amount > 50",
                                  "offset": 10, "limit": 25}, timeout=30)
    assert r.status_code == 200, r.text
    expected = t.filter(pc.and_(pc.equal(t["region"], "EU"), pc.greater(t["amount"], 50.0)))
    expected = expected.select(["id", "amount"]).slice(10, 25)
    assert read_ipc(r.content).equals(expected)
    assert r.headers["X-Quiver-Source-Key"] == "s/sales"
    top = requests.get(url, params={"sort": "-amount,id", "limit": 5, "columns": "id,amount"},
                       timeout=30)
    want = t.sort_by([("amount", "descending"), ("id", "ascending")]).select(["id", "amount"])
    assert read_ipc(top.content).equals(want.slice(0, 5))
    bad = requests.get(url, params={"filter": "amount >> 3"}, timeout=30)
    assert bad.status_code == 400 and "filter" in bad.json()["message"]
    unknown = requests.get(url, params={"columns": "id,nope"}, timeout=30)
    assert unknown.status_code == 400 and "nope" in unknown.json()["message"]


def test_derived_response_goes_with_its_source(web):
    put(web.client(), "s/src", sales(100))
    url = f"{web.http_url}/v1/objects/s/src"
    first = requests.get(url, params={"format": "parquet"}, timeout=30)
    assert first.status_code == 200

    def kinds():
        e = read_ipc(requests.get(web.http_url + "/v1/entries", timeout=10).content)
        return sorted(e.column("kind").to_pylist())

    assert "derived" in kinds()
    removed = requests.post(web.http_url + "/v1/actions/invalidate", data='{"key": "s/src"}',
                            timeout=10).json()["removed"]
    assert "s/src" in removed and len(removed) == 2  # the source and its Parquet encoding
    assert kinds() == []
    assert requests.get(url, params={"format": "parquet"}, timeout=30).status_code == 404


def test_views_of_query_results(quiver, lite_db):
    srv = quiver(args=["--http", "127.0.0.1:0", "--source", f"lite=sqlite://{lite_db}"])
    body = json.dumps({"source": "lite", "sql": "SELECT id, grp FROM t ORDER BY id", "ttl_s": 600})
    r = requests.post(srv.http_url + "/v1/query", params={"filter": "grp = 'g1'", "limit": 5},
                      data=body, timeout=30)
    assert r.status_code == 200, r.text
    assert read_ipc(r.content).column("id").to_pylist() == [1, 4, 7, 10, 13]
    key = r.headers["X-Quiver-Key"]
    whole = requests.get(f"{srv.http_url}/v1/results/{key}", timeout=30)
    assert whole.status_code == 200 and read_ipc(whole.content).num_rows == 300
    csv = requests.get(f"{srv.http_url}/v1/results/{key}", params={"format": "csv", "limit": 2},
                       timeout=30)
    assert csv.content.decode().splitlines()[1:] == ["0,\"g0\"", "1,\"g1\""]
    assert requests.get(f"{srv.http_url}/v1/results/{'0' * 64}", timeout=30).status_code == 404


def test_stale_while_revalidate_over_http(quiver, workdir, lite_db):
    from quiver_util import write_config
    spec = {"driver": "sqlite", "uri": str(lite_db), "ttl_s": 2,
            "stale_while_revalidate_s": 60, "early_refresh_beta": 0}
    config = write_config(workdir, "swr.json", {"sources": {"lite": spec}})
    srv = quiver(args=["--http", "127.0.0.1:0", "--config", str(config)])
    body = json.dumps({"source": "lite", "sql": "SELECT count(*) AS n FROM t"})
    first = requests.post(srv.http_url + "/v1/query", data=body, timeout=30)
    created = first.headers["X-Quiver-Created-Ms"]

    def fresh_hit():
        r = requests.post(srv.http_url + "/v1/query", data=body, timeout=30)
        return r if r.headers["X-Quiver-Cache"] == "hit" and "X-Quiver-Stale" not in r.headers \
            else None

    hit = wait_for(fresh_hit, what="a fresh hit")
    assert "stale-while-revalidate=60" in hit.headers["Cache-Control"]
    assert hit.headers["Cache-Control"].count("max-age=") == 1

    def stale_or_refreshed():
        r = requests.post(srv.http_url + "/v1/query", data=body, timeout=30)
        assert r.status_code == 200 and read_ipc(r.content).column("n").to_pylist() == [300]
        return r if r.headers.get("X-Quiver-Stale") == "true" else None

    # After expiry, the expired result is served at once, marked stale, while it refreshes.
    stale = wait_for(stale_or_refreshed, timeout=60, what="a stale hit")
    assert stale.headers["X-Quiver-Cache"] == "hit"
    assert stale.headers["Cache-Control"] == "max-age=0"
    assert stale.headers["X-Quiver-Created-Ms"] == created
    renewed = wait_for(lambda: (lambda r: r if r.headers["X-Quiver-Created-Ms"] != created
                                else None)(requests.post(srv.http_url + "/v1/query", data=body,
                                                         timeout=30)),
                       timeout=60, what="the refreshed result")
    assert "X-Quiver-Stale" not in renewed.headers
