"""GetFlightInfo, GetSchema, ListFlights, ListActions, and the delete / delete-prefix /
stats actions, including their effect on storage."""

import json

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from quiver_util import action, descriptor, get, get_table, manifest_path, put, stats


def table_for(tag, n=4):
    return pa.table({"tag": pa.array([tag] * n), "n": pa.array(range(n), pa.int32())},
                    metadata={"tag": tag})


def info_key(info):
    return "/".join(p.decode() for p in info.descriptor.path)


def test_get_flight_info(server):
    client = server.client()
    t1, t2 = table_for("a", 3), table_for("b", 7)
    put(client, "s/o", t1)
    put(client, "s/o", t2)
    info = client.get_flight_info(descriptor("s/o"))
    assert info.schema.equals(t2.schema, check_metadata=True)
    assert info.total_records == 7
    assert info.descriptor == descriptor("s/o")
    assert json.loads(info.app_metadata) == {"endpoint": server.location, "key": "s/o",
                                             "version": 2}
    assert len(info.endpoints) == 1
    ep = info.endpoints[0]
    assert ep.ticket.ticket == b"s/o@2"
    assert [loc.uri.decode() for loc in ep.locations] == [server.location]
    # total_bytes is the size of the stored IPC stream, as on disk
    manifest = json.loads(manifest_path(server.data_dir, "s/o", 2).read_text())
    assert info.total_bytes == manifest["bytes"]
    assert (server.data_dir / manifest["blob"]).stat().st_size == info.total_bytes
    # the endpoint's ticket redeems exactly that version, at the advertised location,
    # even after a newer version appears
    put(client, "s/o", table_for("c"))
    other = flight.connect(ep.locations[0])
    try:
        got, meta, _, _ = get(other, ep.ticket.ticket)
    finally:
        other.close()
    assert got.equals(t2) and meta["version"] == 2
    # three-segment keys
    put(client, "ns/s/o", t1)
    info3 = client.get_flight_info(descriptor("ns/s/o"))
    assert info3.endpoints[0].ticket.ticket == b"ns/s/o@1"
    assert list(info3.descriptor.path) == [b"ns", b"s", b"o"]


def test_get_schema(server):
    client = server.client()
    t = table_for("x")
    put(client, "s/schema", t)
    got = client.get_schema(descriptor("s/schema")).schema
    assert got.equals(t.schema, check_metadata=True)
    put(client, "s/schema", pa.table({"other": [1.5]}))
    assert client.get_schema(descriptor("s/schema")).schema.names == ["other"]


def test_object_key_in_command_descriptor_is_not_an_object(server):
    # Objects are addressed by PATH descriptors; a CMD descriptor holding key text is not
    # silently served as that object.
    client = server.client()
    put(client, "s/o", table_for("x"))
    for call in (client.get_flight_info, client.get_schema):
        with pytest.raises(pa.ArrowInvalid):
            call(flight.FlightDescriptor.for_command(b"s/o"))


def test_list_flights_prefix(server):
    client = server.client()
    keys = ["s/a", "s/b", "sx/a", "s2/c", "ns/s/a", "other/z"]
    for k in keys:
        put(client, k, table_for(k))
    put(client, "s/a", table_for("s/a v2", 9))  # s/a is at version 2

    def listed(criteria):
        return {info_key(i): i for i in client.list_flights(criteria)}

    everything = listed(b"")
    assert set(everything) == set(keys)
    assert {info_key(i) for i in client.list_flights()} == set(keys)  # no criteria
    # plain string prefix, not whole segments
    assert set(listed(b"s")) == {"s/a", "s/b", "sx/a", "s2/c"}
    assert set(listed(b"s/")) == {"s/a", "s/b"}
    assert set(listed(b"ns/")) == {"ns/s/a"}
    assert set(listed(b"nothing")) == set()
    # each info describes the latest version
    sa = everything["s/a"]
    assert sa.total_records == 9
    assert sa.endpoints[0].ticket.ticket == b"s/a@2"
    assert json.loads(sa.app_metadata)["version"] == 2
    assert sa.schema.equals(table_for("s/a v2", 9).schema, check_metadata=True)
    for k, info in everything.items():
        assert get_table(client, info.endpoints[0].ticket.ticket).num_rows == info.total_records
    # deleted keys disappear from listings
    action(client, "delete", {"key": "sx/a"})
    assert "sx/a" not in listed(b"")


def test_list_actions(server):
    client = server.client()
    actions = {a.type: a.description for a in client.list_actions()}
    assert {"delete", "delete-prefix", "stats"} <= set(actions)
    assert all(actions.values())


def test_unknown_action(server):
    client = server.client()
    with pytest.raises(pa.ArrowNotImplementedError) as e:
        list(client.do_action(flight.Action("frobnicate", b"")))
    assert "unknown action 'frobnicate'" in str(e.value)


def test_delete(server):
    client = server.client()
    put(client, "del/a", table_for("1"))
    put(client, "del/a", table_for("2"))
    put(client, "del/b", table_for("b"))
    assert len(server.data_files()) == 3

    assert action(client, "delete", {"key": "del/a"}) == {"deleted": ["del/a"], "versions": 2}
    with pytest.raises(KeyError):
        get(client, "del/a")
    with pytest.raises(KeyError):
        client.get_flight_info(descriptor("del/a"))
    # storage: its manifests and data files are gone, the other key's remain
    assert not (server.data_dir / "manifests/del/a").exists()
    assert len(server.data_files()) == 1
    assert get_table(client, "del/b").equals(table_for("b"))

    # bare-key body; deleting a missing key is not an error
    assert action(client, "delete", "del/b") == {"deleted": ["del/b"], "versions": 1}
    assert action(client, "delete", "del/b") == {"deleted": [], "versions": 0}
    assert action(client, "delete", {"key": "never/was"}) == {"deleted": [], "versions": 0}
    assert server.data_files() == []

    with pytest.raises(pa.ArrowInvalid) as e:
        action(client, "delete", {"key": "../etc"})
    assert "'..'" in str(e.value)
    with pytest.raises(pa.ArrowInvalid) as e:
        action(client, "delete", {"prefix": "del"})
    assert "key" in str(e.value)


def test_delete_prefix_whole_segments(server):
    client = server.client()
    keys = ["s/a", "s/b", "sx/a", "s2/a", "ns/s/a", "ns/s/b", "ns/t/a", "s/a2"]
    for k in keys:
        put(client, k, table_for(k))
    put(client, "s/a", table_for("again"))

    res = action(client, "delete-prefix", {"prefix": "s"})
    assert sorted(res["deleted"]) == ["s/a", "s/a2", "s/b"]
    assert res["versions"] == 4
    remaining = {info_key(i) for i in client.list_flights(b"")}
    assert remaining == {"sx/a", "s2/a", "ns/s/a", "ns/s/b", "ns/t/a"}

    # two-segment prefix of three-segment keys, bare body
    res = action(client, "delete-prefix", "ns/s")
    assert sorted(res["deleted"]) == ["ns/s/a", "ns/s/b"] and res["versions"] == 2
    assert get_table(client, "ns/t/a").equals(table_for("ns/t/a"))

    # a prefix that is a whole key deletes that key
    assert action(client, "delete-prefix", {"prefix": "sx/a"}) == {"deleted": ["sx/a"],
                                                                    "versions": 1}
    # nothing matches
    assert action(client, "delete-prefix", {"prefix": "zzz"}) == {"deleted": [], "versions": 0}
    assert {info_key(i) for i in client.list_flights(b"")} == {"s2/a", "ns/t/a"}
    assert len(server.data_files()) == 2

    # an empty or malformed prefix is refused rather than deleting everything
    for bad in ("", "s/", "a b", "../x", "a/b/c/d"):
        with pytest.raises(pa.ArrowInvalid) as e:
            action(client, "delete-prefix", {"prefix": bad})
        assert "invalid key prefix" in str(e.value), bad
    assert len(server.data_files()) == 2


OBJECT_STATS = ("entries", "versions", "bytes", "puts", "put_failures", "gets", "hits",
                "misses", "not_modified")


def test_stats_counters(server):
    client = server.client()
    s0 = stats(client)
    assert {k: s0[k] for k in OBJECT_STATS} == dict.fromkeys(OBJECT_STATS, 0)

    put(client, "st/a", table_for("1"))
    put(client, "st/a", table_for("2"))
    put(client, "st/b", table_for("b"))
    s1 = stats(client)
    sizes = sum(json.loads(p.read_text())["bytes"]
                for p in (server.data_dir / "manifests").rglob("*.json"))
    assert (s1["entries"], s1["versions"], s1["bytes"]) == (2, 3, sizes)
    assert (s1["puts"], s1["put_failures"], s1["gets"]) == (3, 0, 0)

    get(client, "st/a")
    get(client, "st/a@1")
    with pytest.raises(KeyError):
        get(client, "st/none")
    with pytest.raises(KeyError):
        get(client, "st/a@9")
    get(client, b'{"key": "st/b", "if_none_match": 1}')
    s2 = stats(client)
    assert (s2["gets"], s2["hits"], s2["misses"], s2["not_modified"]) == (5, 3, 2, 1)

    # metadata calls are not reads
    client.get_flight_info(descriptor("st/a"))
    client.get_schema(descriptor("st/a"))
    list(client.list_flights(b""))
    s3 = stats(client)
    assert (s3["gets"], s3["hits"], s3["misses"]) == (5, 3, 2)

    # a failed compare-and-set counts as a put failure and stores nothing
    with pytest.raises(pa.ArrowException):
        put(client, "st/a", table_for("x"), if_version=1)
    s4 = stats(client)
    assert (s4["puts"], s4["put_failures"], s4["versions"]) == (3, 1, 3)

    # trimming and deleting update the index statistics
    for i in range(3):
        put(client, "st/a", table_for(f"more{i}"))
    s5 = stats(client)
    assert (s5["entries"], s5["versions"], s5["puts"]) == (2, 4, 6)
    action(client, "delete", {"key": "st/a"})
    s6 = stats(client)
    assert (s6["entries"], s6["versions"]) == (1, 1)
    assert s6["bytes"] == json.loads(
        next((server.data_dir / "manifests").rglob("*.json")).read_text())["bytes"]
    action(client, "delete-prefix", {"prefix": "st"})
    s7 = stats(client)
    assert (s7["entries"], s7["versions"], s7["bytes"]) == (0, 0, 0)
    assert s7["puts"] == 6  # history counters are not reset by deletes
