"""Flame's Python SDK (flamepy 0.6.0) against the real quiver binary (docs/compat/flame.md).

flamepy runs in a child process of its own, configured as a Flame user configures it: the
FLAME_CACHE_ENDPOINT environment variable, or ~/.flame/flame.yaml (HOME points at a fresh
directory, so no configuration of the machine leaks in). Each scenario runs flamepy's public
cache functions and asserts inside the child; it prints a JSON line the test checks against
what Quiver's own clients see on the wire.
"""

import json
import os
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from quiver_util import action, get, put, stats

pytest.importorskip("flamepy")
pytestmark = pytest.mark.timeout(240)


def run_flamepy(server, workdir, code, *, config_file=False, env=None):
    """Run `code` in a child Python with flamepy pointed at `server`; returns its last
    stdout line as JSON."""
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("FLAME_")}
    child_env["HOME"] = str(home)
    if config_file:
        (home / ".flame").mkdir(exist_ok=True)
        (home / ".flame" / "flame.yaml").write_text(textwrap.dedent(f"""\
            current-context: quiver
            contexts:
              - name: quiver
                cluster:
                  endpoint: http://127.0.0.1:1
                cache:
                  endpoint: {server.location}
            """))
    else:
        child_env["FLAME_CACHE_ENDPOINT"] = server.location
    child_env.update(env or {})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=child_env,
                          cwd=workdir, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, f"flamepy scenario failed:\n{proc.stderr}\n{proc.stdout}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def flame_rows(client, ticket):
    """A Flame DoGet as a raw client sees it: (table, [(version, kind)])."""
    table = client.do_get(flight.Ticket(ticket.encode())).read_all()
    if "kind" not in table.column_names:
        return table, []
    return table, list(zip(table.column("version").to_pylist(), table.column("kind").to_pylist()))


def test_put_get_update_tables_arrays_and_objects(server, workdir):
    out = run_flamepy(server, workdir, """
        import json, uuid
        import numpy as np
        import pyarrow as pa
        from flamepy.cache import ObjectRef, get_object, put_object, update_object

        table = pa.table({"x": [1, 2, 3], "s": ["a", "b", "c"]})
        t_ref = put_object("app1/ssn1", table)
        assert t_ref.key.startswith("app1/ssn1/") and t_ref.version == 1, t_ref
        uuid.UUID(t_ref.key.split("/")[2])  # the server made a UUID
        got = get_object(t_ref)
        assert isinstance(got, pa.Table) and got.equals(table), got
        assert not any(k.startswith(b"flame.") for k in (got.schema.metadata or {}))

        batch = pa.record_batch({"y": [1.5, 2.5]})
        got_batch = get_object(put_object("app1/ssn1", batch))
        assert isinstance(got_batch, pa.RecordBatch) and got_batch.equals(batch)

        arr = np.arange(12, dtype=np.float64).reshape(3, 4)
        np.testing.assert_array_equal(get_object(put_object("app1/ssn1", arr)), arr)

        obj = {"a": [1, 2], "b": (3, "x")}
        o_ref = put_object("app1/ssn1", obj)
        first = get_object(o_ref)
        assert first == obj
        # The client cache asks with its version; "not modified" returns the cached object.
        assert get_object(o_ref) is first

        o2 = update_object(o_ref, {"new": 1})
        assert o2.key == o_ref.key and o2.version == 2, o2
        assert get_object(o2) == {"new": 1}
        assert get_object(o_ref) == {"new": 1}  # the cache was dropped by update_object
        assert get_object(ObjectRef(o2.endpoint, o2.key, 0)) == {"new": 1}  # forced download

        table2 = pa.table({"x": [9], "s": ["z"]})
        t2 = update_object(t_ref, table2)
        assert t2.version == 2 and get_object(t2).equals(table2)

        print(json.dumps({"table": t2.key, "object": o2.key, "endpoint": o2.endpoint}))
    """)
    client = server.client()
    assert str(server.port) in out["endpoint"]
    assert stats(client)["not_modified"] >= 1
    # On the wire: a native table carries the stored version; an object is version/kind/data.
    table = client.do_get(flight.Ticket(f"{out['table']}:0".encode())).read_all()
    meta = table.schema.metadata
    assert meta[b"flame.cache.format"] == b"arrow-table-v1"
    assert meta[b"flame.cache.version"] == b"2"
    assert meta[b"flame.cache.logical_type"] == b"pyarrow.table"
    assert table.column("x").to_pylist() == [9]
    _, rows = flame_rows(client, f"{out['object']}:0")
    assert rows == [(2, "base")]
    not_modified, rows = flame_rows(client, f"{out['object']}:2")
    assert not_modified.num_rows == 0 and not_modified.column_names == ["version", "kind", "data"]
    # Quiver's own clients read the same keys.
    assert get(client, out["table"])[0].column("s").to_pylist() == ["z"]
    # GetFlightInfo on a one-element path: where to read it, with the stored schema.
    info = client.get_flight_info(flight.FlightDescriptor.for_path(out["table"]))
    assert info.endpoints[0].ticket.ticket == f"{out['table']}:0".encode()
    assert str(server.port) in info.endpoints[0].locations[0].uri.decode()
    assert info.schema.metadata[b"flame.cache.version"] == b"2"


def test_patches_deltas_and_client_cache(server, workdir):
    out = run_flamepy(server, workdir, """
        import json, subprocess, sys
        import pyarrow as pa
        from flamepy.cache import ObjectRef, get_object, patch_object, put_object

        merge = lambda base, deltas: base + [x for d in deltas for x in d]
        base = put_object("app2/ssn", [1, 2])
        p1 = patch_object(base, [3])
        p2 = patch_object(p1, [4, 5])
        assert (p1.version, p2.version) == (2, 3), (p1, p2)
        assert get_object(p2, merge) == [1, 2, 3, 4, 5]
        assert get_object(p2) == [1, 2]  # without a deserializer: the base

        # Another Flame worker patches; this client holds version 3 and gets only the delta.
        code = ("from flamepy.cache import ObjectRef, patch_object; "
                f"print(patch_object(ObjectRef({p2.endpoint!r}, {p2.key!r}, 3), [6]).version)")
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode == 0 and other.stdout.strip() == "4", other.stderr
        assert get_object(p2, merge) == [1, 2, 3, 4, 5, 6]

        table_ref = put_object("app2/ssn", pa.table({"x": [1]}))
        try:
            patch_object(table_ref, [1])
            raise AssertionError("a patch of a native table was accepted")
        except Exception as e:  # flamepy passes the server's error on
            assert "schema" in str(e), e

        try:
            patch_object(ObjectRef(p2.endpoint, "app2/ssn/no-such-object", 1), [1])
            raise AssertionError("a patch of a missing object was accepted")
        except Exception as e:
            assert "no-such-object" in str(e), e
        print(json.dumps({"key": p2.key}))
    """)
    client = server.client()
    key = out["key"]
    _, rows = flame_rows(client, f"{key}:0")
    assert rows == [(1, "base"), (2, "patch"), (3, "patch"), (4, "patch")]
    # A client at version 3 is sent version 4 only; at version 1, every patch since.
    _, rows = flame_rows(client, f"{key}:3")
    assert rows == [(4, "patch")]
    _, rows = flame_rows(client, f"{key}:1")
    assert rows == [(2, "patch"), (3, "patch"), (4, "patch")]
    # Quiver's own client: the stored rows of base and patches, as one stream.
    table, meta, _, _ = get(client, key)
    assert table.column_names == ["version", "data"] and table.num_rows == 4
    assert meta["status"] == "ok" and meta["version"] == 4
    deltas, meta, _, _ = get(client, json.dumps({"key": key, "since": 2}))
    assert deltas.num_rows == 2 and meta["status"] == "patches" and meta["since"] == 2


def test_concurrent_patches_all_land(server, workdir):
    out = run_flamepy(server, workdir, """
        import json
        from concurrent.futures import ThreadPoolExecutor
        from flamepy.cache import get_object, patch_object, put_object

        base = put_object("app7/ssn", [])
        def worker(w):
            return [patch_object(base, [(w, i)]).version for i in range(5)]
        with ThreadPoolExecutor(4) as pool:
            versions = sorted(v for vs in pool.map(worker, range(4)) for v in vs)
        assert versions == list(range(2, 22)), versions
        merged = get_object(base, lambda b, ds: b + [x for d in ds for x in d])
        assert sorted(map(tuple, merged)) == [(w, i) for w in range(4) for i in range(5)]
        for w in range(4):  # each writer's patches in its own order
            assert [i for (x, i) in map(tuple, merged) if x == w] == list(range(5))
        print(json.dumps({"key": base.key}))
    """)
    _, rows = flame_rows(server.client(), f"{out['key']}:0")
    assert [v for v, _ in rows] == list(range(1, 22))


def test_delete_objects_by_key_session_and_app(server, workdir):
    client = server.client()
    # A Quiver key "app3/s1" is not a Flame object: Flame prefixes leave it alone.
    put(client, "app3/s1", pa.table({"q": [1]}))
    out = run_flamepy(server, workdir, """
        import json
        from flamepy.cache import delete_objects, get_object, put_object

        def gone(ref):
            try:
                get_object(ref)
                return False
            except KeyError:
                return True

        r1, r2 = put_object("app3/s1", 1), put_object("app3/s1", 2)
        r3, r4 = put_object("app3/s2", 3), put_object("app4/s1", 4)
        assert get_object(r1) == 1  # cached on the client, too
        delete_objects(r1.key)
        assert gone(r1) and get_object(r2) == 2
        delete_objects("app3/s1")
        assert gone(r2) and get_object(r3) == 3
        delete_objects("app3/*")
        assert gone(r3) and get_object(r4) == 4
        delete_objects("app3/*")  # nothing left: not an error
        print(json.dumps({"kept": r4.key}))
    """)
    keys = ["/".join(p.decode() for p in f.descriptor.path) for f in client.list_flights(b"")]
    assert sorted(keys) == sorted(["app3/s1", out["kept"]])
    assert [a.type for a in client.list_actions()].count("DELETE") == 1
    result = list(client.do_action(flight.Action("DELETE", b"app4/s1")))
    assert [r.body.to_pybytes() for r in result] == [b"OK"]
    with pytest.raises(pa.ArrowInvalid, match="wildcard"):
        list(client.do_action(flight.Action("DELETE", b"*/s1")))


def test_upload_download_odd_keys_and_config_file(server, workdir):
    blob = workdir / "blob.bin"
    blob.write_bytes(os.urandom(2_500_000))  # three 1 MiB rows on the wire
    out = run_flamepy(server, workdir, f"""
        import json
        from pathlib import Path
        from flamepy.core.cache import download_object, upload_object
        from flamepy.cache import get_object, put_object, update_object

        ref = upload_object("app5/files/blob.bin", {str(blob)!r})
        assert ref.key == "app5/files/blob.bin" and ref.version == 1, ref
        # flamepy 0.6.0's download_object iterates the Flight reader as record batches, but
        # pyarrow yields FlightStreamChunks: it fails before writing, whatever the server.
        try:
            download_object(ref, {str(workdir / "copy.bin")!r})
            raise AssertionError("download_object worked: drop this workaround")
        except ValueError as e:
            assert "FlightStreamChunk" in str(e), e
        assert not Path({str(workdir / "copy.bin")!r}).exists()
        picked = upload_object("app5/files", {str(blob)!r})
        assert picked.key.startswith("app5/files/") and picked.key != ref.key

        # Characters Flame allows in a key and Quiver's keys do not.
        odd = put_object("app:x/ssn@1", {{"odd": True}})
        assert odd.key.startswith("app:x/ssn@1/"), odd
        assert get_object(odd) == {{"odd": True}}
        assert update_object(odd, 5).version == 2 and get_object(odd) == 5
        print(json.dumps({{"odd": odd.key}}))
    """, config_file=True)
    client = server.client()
    # What download_object asks for, read as it means to: the base row holds the whole file.
    table, rows = flame_rows(client, "app5/files/blob.bin:0")
    assert rows == [(1, "base")]
    assert table.column("data")[0].as_py() == blob.read_bytes()
    keys = ["/".join(p.decode() for p in f.descriptor.path) for f in client.list_flights(b"")]
    uuid = out["odd"].rsplit("/", 1)[1]
    assert f"..6170703a78/..73736e4031/{uuid}" in keys
    assert "app5/files/blob.bin" in keys


def test_local_storage_put_asks_flight_info(server, workdir):
    # With FLAME_CACHE_STORAGE the SDK writes the file itself and asks the server only where
    # the object is served (GetFlightInfo); Quiver answers, but does not read that directory.
    out = run_flamepy(server, workdir, """
        import json
        import pyarrow as pa
        from flamepy.cache import put_object
        ref = put_object("app6/ssn", pa.table({"x": [1]}))
        print(json.dumps({"key": ref.key, "endpoint": ref.endpoint, "version": ref.version}))
    """, env={"FLAME_CACHE_STORAGE": str(workdir / "flame-storage")})
    assert str(server.port) in out["endpoint"] and out["version"] == 1
    app, ssn, oid = out["key"].split("/")
    assert (workdir / "flame-storage" / app / ssn / f"{oid}.arrow").is_file()
    with pytest.raises(KeyError):
        server.client().do_get(flight.Ticket(f"{out['key']}:0".encode())).read_all()


def test_flame_errors_name_the_problem(server):
    client = server.client()
    with pytest.raises(KeyError, match="not found"):
        client.do_get(flight.Ticket(b"app/ssn/missing:0")).read_all()
    with pytest.raises(pa.ArrowInvalid, match="Flame object"):
        writer, _ = client.do_put(flight.FlightDescriptor.for_path("app/ssn"),
                                  pa.schema([("x", pa.int64())]))
        writer.write_table(pa.table({"x": [1]}))
        writer.close()
    with pytest.raises(pa.ArrowInvalid, match="invalid Flame key"):
        writer, _ = client.do_put(flight.FlightDescriptor.for_path("app/../x"),
                                  pa.schema([("version", pa.uint64()), ("data", pa.binary())]))
        writer.close()
