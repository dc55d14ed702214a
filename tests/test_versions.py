"""Versions, compare-and-set, key@N tickets, trimming, and conditional gets."""

import json

import grpc
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flight_raw import ipc_messages, raw_do_put
from quiver_util import descriptor, get, get_table, manifest_versions, put, stats


def table_for(tag, n=5):
    """A small table whose content identifies it."""
    return pa.table({"tag": pa.array([tag] * n), "i": pa.array(range(n), pa.int64())})


def test_versions_start_at_one_and_increase(server):
    client = server.client()
    tables = [table_for(f"v{i}") for i in range(1, 4)]
    refs = [put(client, "s/o", t) for t in tables]
    assert [r["version"] for r in refs] == [1, 2, 3]
    for r in refs:
        assert r == {"endpoint": server.location, "key": "s/o", "version": r["version"]}
    # Versions are per key: another key starts at 1, a 3-segment key too.
    assert put(client, "s/other", tables[0])["version"] == 1
    assert put(client, "ns/s/o", tables[0])["version"] == 1
    assert put(client, "ns/s/o", tables[1])["version"] == 2
    # latest and key@N
    assert get_table(client, "s/o").equals(tables[2])
    for n, t in enumerate(tables, start=1):
        got, meta, _, _ = get(client, f"s/o@{n}")
        assert got.equals(t)
        assert meta["version"] == n and meta["key"] == "s/o" and meta["status"] == "ok"
    got, meta, _, _ = get(client, "ns/s/o")
    assert got.equals(tables[1]) and meta["key"] == "ns/s/o" and meta["version"] == 2


def test_compare_and_set(server):
    client = server.client()
    t1, t2, t3, stale = (table_for(x) for x in ("one", "two", "three", "stale"))

    # if_version 0: create only
    assert put(client, "cas/k", t1, if_version=0)["version"] == 1
    with pytest.raises(pa.ArrowException) as e:
        put(client, "cas/k", stale, if_version=0)
    assert "version conflict" in str(e.value)
    assert "is at version 1, not 0" in str(e.value)

    # correct N succeeds
    assert put(client, "cas/k", t2, if_version=1)["version"] == 2
    assert put(client, "cas/k", t3, if_version=2)["version"] == 3

    # stale N fails and leaves the current version untouched
    for n in (1, 2, 4, 100):
        with pytest.raises(pa.ArrowException) as e:
            put(client, "cas/k", stale, if_version=n)
        assert "version conflict" in str(e.value), str(e.value)
        assert f"not {n}" in str(e.value)
    got, meta, _, _ = get(client, "cas/k")
    assert got.equals(t3) and meta["version"] == 3
    assert get_table(client, "cas/k@2").equals(t2)

    # CAS on the first batch's metadata instead of a metadata-only message
    writer, reader = client.do_put(descriptor("cas/k"), t1.schema)
    writer.write_with_metadata(t1.to_batches()[0], b'{"if_version": 3}')
    writer.done_writing()
    assert json.loads(reader.read().to_pybytes())["version"] == 4
    writer.close()
    assert get_table(client, "cas/k").equals(t1)

    # A create-only put of a new key works; without if_version a put always succeeds.
    assert put(client, "cas/new", t1, if_version=0)["version"] == 1
    assert put(client, "cas/new", t2)["version"] == 2
    assert server.tmp_files() == []


def test_cas_conflict_is_already_exists_status(server):
    client = server.client()
    t = table_for("x")
    put(client, "cas/raw", t)
    outcome = raw_do_put(server.location, ["cas", "raw"], ipc_messages(t.schema, t.to_batches()),
                         options=b'{"if_version": 0}')
    assert outcome.code == grpc.StatusCode.ALREADY_EXISTS, outcome
    assert "version conflict" in outcome.details
    assert outcome.results == []
    ok = raw_do_put(server.location, ["cas", "raw"], ipc_messages(t.schema, t.to_batches()),
                    options=b'{"if_version": 1}')
    assert ok.ok, ok
    assert [json.loads(r)["version"] for r in ok.results] == [2]


def test_cas_conflict_decided_at_commit(server):
    """Two puts with the same if_version, interleaved: the second to commit loses."""
    client_a, client_b = server.client(), server.client()
    base = table_for("base")
    put(client_a, "race/k", base)
    ta, tb = table_for("A"), table_for("B")
    wa, ra = client_a.do_put(descriptor("race/k"), ta.schema)
    wa.write_metadata(b'{"if_version": 1}')
    wa.write_table(ta)
    wb, rb = client_b.do_put(descriptor("race/k"), tb.schema)
    wb.write_metadata(b'{"if_version": 1}')
    wb.write_table(tb)
    # Both passed the early check (the key is at 1); now A commits first.
    wa.done_writing()
    assert json.loads(ra.read().to_pybytes())["version"] == 2
    wa.close()
    with pytest.raises(pa.ArrowException) as e:
        wb.done_writing()
        rb.read()
        wb.close()
    assert "version conflict" in str(e.value)
    got, meta, _, _ = get(client_a, "race/k")
    assert got.equals(ta) and meta["version"] == 2
    st = stats(client_a)
    assert st["versions"] == 2 and st["puts"] == 2 and st["put_failures"] >= 1
    # The loser's data blob is gone too: one data file per kept version.
    assert len(server.data_files()) == 2
    assert server.tmp_files() == []


def test_trimmed_versions_are_gone(server):
    client = server.client()
    tables = [table_for(f"t{i}") for i in range(1, 6)]
    for t in tables:
        put(client, "trim/k", t)
    # default keep_versions = 3: versions 3, 4, 5 remain
    for n in (1, 2):
        with pytest.raises(KeyError) as e:
            get(client, f"trim/k@{n}")
        assert f"no version {n} of object 'trim/k'" in str(e.value)
        assert isinstance(e.value, pa.ArrowKeyError)
    for n in (3, 4, 5):
        assert get_table(client, f"trim/k@{n}").equals(tables[n - 1])
    with pytest.raises(KeyError):
        get(client, "trim/k@6")
    # storage holds exactly the kept versions
    assert manifest_versions(server.data_dir, "trim/k") == [3, 4, 5]
    assert len(server.data_files()) == 3
    st = stats(client)
    assert st["entries"] == 1 and st["versions"] == 3


def test_keep_versions_flag(quiver):
    server = quiver(args=["--keep-versions", "1"])
    client = server.client()
    t1, t2 = table_for("1"), table_for("2")
    put(client, "k1/o", t1)
    put(client, "k1/o", t2)
    with pytest.raises(KeyError):
        get(client, "k1/o@1")
    assert get_table(client, "k1/o@2").equals(t2)
    assert len(server.data_files()) == 1


def test_missing_key_and_version(server):
    client = server.client()
    with pytest.raises(pa.ArrowKeyError) as e:
        get(client, "no/such")
    assert "no object 'no/such'" in str(e.value)
    put(client, "has/one", table_for("x"))
    with pytest.raises(pa.ArrowKeyError) as e:
        get(client, "has/one@2")
    assert "no version 2 of object 'has/one'" in str(e.value)
    with pytest.raises(pa.ArrowKeyError) as e:
        get(client, b'{"key": "has/one", "version": 7}')
    assert "no version 7" in str(e.value)
    with pytest.raises(pa.ArrowKeyError):
        client.get_flight_info(descriptor("no/such"))
    with pytest.raises(pa.ArrowKeyError):
        client.get_schema(descriptor("no/such"))


def test_json_ticket_forms(server):
    client = server.client()
    t1, t2 = table_for("1"), table_for("2")
    put(client, "j/o", t1)
    put(client, "j/o", t2)
    got, meta, _, _ = get(client, b'{"key": "j/o"}')
    assert got.equals(t2) and meta["version"] == 2
    got, meta, _, _ = get(client, b'{"key": "j/o", "version": 1}')
    assert got.equals(t1) and meta["version"] == 1


def test_conditional_get(server):
    client = server.client()
    schema = pa.schema([("d", pa.dictionary(pa.int8(), pa.string())), ("x", pa.float64())],
                       metadata={"m": "1"})
    t1 = pa.table({"d": pa.array(["a", "b", "a"]).dictionary_encode(), "x": [1.0, 2.0, 3.0]},
                  schema=schema)
    t2 = pa.table({"d": pa.array(["c"]).dictionary_encode(), "x": [4.0]}, schema=schema)
    put(client, "c/o", t1)
    put(client, "c/o", t2)
    before = stats(client)

    # not modified: latest is 2
    got, meta, rows, nmeta = get(client, b'{"key": "c/o", "if_none_match": 2}')
    assert meta == {"endpoint": server.location, "key": "c/o", "version": 2,
                    "status": "not_modified"}
    assert rows == [0] and nmeta == 1
    assert got.num_rows == 0
    assert got.schema.equals(schema, check_metadata=True)

    # modified: the client has 1, the latest is 2 -> full data
    got, meta, rows, _ = get(client, b'{"key": "c/o", "if_none_match": 1}')
    assert meta["status"] == "ok" and meta["version"] == 2
    assert got.equals(t2)

    # with an explicit version
    got, meta, rows, _ = get(client, b'{"key": "c/o", "version": 1, "if_none_match": 1}')
    assert meta["status"] == "not_modified" and meta["version"] == 1 and rows == [0]
    got, meta, rows, _ = get(client, b'{"key": "c/o", "version": 1, "if_none_match": 2}')
    assert meta["status"] == "ok" and meta["version"] == 1 and got.equals(t1)

    # if_none_match of a version that no longer exists is simply "modified"
    got, meta, _, _ = get(client, b'{"key": "c/o", "if_none_match": 99}')
    assert meta["status"] == "ok" and got.equals(t2)

    after = stats(client)
    assert after["not_modified"] - before["not_modified"] == 2
    assert after["gets"] - before["gets"] == 5
    assert after["hits"] - before["hits"] == 5

    # conditional get of a missing key is still NOT_FOUND
    with pytest.raises(pa.ArrowKeyError):
        get(client, b'{"key": "c/none", "if_none_match": 1}')


def test_delete_restarts_versions_at_one(server):
    client = server.client()
    for i in range(3):
        put(client, "d/o", table_for(str(i)))
    res = json.loads(next(iter(client.do_action(flight.Action("delete", b"d/o")))).body
                     .to_pybytes())
    assert res == {"deleted": ["d/o"], "versions": 3}
    with pytest.raises(KeyError):
        get(client, "d/o")
    with pytest.raises(KeyError):
        get(client, "d/o@3")
    t = table_for("again")
    assert put(client, "d/o", t, if_version=0)["version"] == 1
    assert get_table(client, "d/o@1").equals(t)
