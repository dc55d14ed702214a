"""Object patches with Quiver's own clients (docs/api.md, "Patches and deltas"): a patch
version stores only its rows; a full read is base + patches; a read `since` a version of the
chain is the deltas only; the chain outlives keep_versions, restarts and an index rebuild.
Runs in every deployment (the Redis index and the S3 store keep base_version too)."""

import json
import shutil

import pyarrow as pa
import pyarrow.flight  # noqa: F401  (pa.flight)
import pytest

from quiver_util import descriptor, get, put
from query_util import wait_for


def patch(client, key, data, **options):
    return put(client, key, data, app_metadata=json.dumps({"patch": True, **options}).encode())


def ids(client, ticket):
    table, meta, _, _ = get(client, ticket)
    return table.column("id").to_pylist(), meta


def rows(*values):
    return pa.table({"id": pa.array(values, pa.int64()), "name": [str(v) for v in values]})


def test_full_read_is_base_and_patches_and_since_reads_deltas(quiver):
    srv = quiver(args=["--keep-versions", "2"])
    client = srv.client()
    base = put(client, "p/log", rows(1, 2))
    for v in range(3, 7):  # four patches: longer than keep_versions
        ref = patch(client, "p/log", rows(v))
    assert ref["version"] == base["version"] + 4
    got, meta = ids(client, "p/log")
    assert got == [1, 2, 3, 4, 5, 6] and meta["status"] == "ok" and meta["version"] == 5
    got, meta = ids(client, json.dumps({"key": "p/log", "since": 3}))
    assert got == [5, 6] and meta["status"] == "patches" and meta["since"] == 3
    info = client.get_flight_info(descriptor("p/log"))
    assert info.total_records == 6 and info.endpoints[0].ticket.ticket == b"p/log@5"
    assert [f.total_records for f in client.list_flights(b"p/")] == [6]
    got, meta = ids(client, "p/log@3")  # an older version in full: base + its patches
    assert got == [1, 2, 3, 4] and meta["version"] == 3
    _, meta = ids(client, json.dumps({"key": "p/log", "since": 5}))
    assert meta["status"] == "not_modified"

    # A full put starts a new chain: a `since` of the old chain now reads the whole object.
    put(client, "p/log", rows(7))
    got, meta = ids(client, json.dumps({"key": "p/log", "since": 3}))
    assert got == [7] and meta["status"] == "ok"
    # keep_versions applies again: the old chain's base is gone, its patches cannot be read.
    with pytest.raises(KeyError):
        get(client, "p/log@5")


def test_patch_is_checked_against_the_object(quiver):
    client = quiver().client()
    with pytest.raises(KeyError, match="no object 'p/none' to patch"):
        patch(client, "p/none", rows(1))
    put(client, "p/t", rows(1))
    with pytest.raises(pa.ArrowInvalid, match="field 0 is 'id: string' in the patch"):
        patch(client, "p/t", pa.table({"id": ["x"], "name": ["x"]}))
    with pytest.raises(pa.ArrowException, match="version conflict"):
        patch(client, "p/t", rows(2), if_version=7)
    assert patch(client, "p/t", rows(2), if_version=1)["version"] == 2
    assert ids(client, "p/t")[0] == [1, 2]


@pytest.mark.embedded_only
def test_chain_survives_restart_and_index_rebuild(quiver):
    srv = quiver(args=["--keep-versions", "1"])
    client = srv.client()
    put(client, "p/log", rows(1))
    patch(client, "p/log", rows(2))
    patch(client, "p/log", rows(3))
    srv.restart()  # the index journal's snapshot keeps base_version
    assert ids(srv.client(), "p/log")[0] == [1, 2, 3]
    srv.stop()
    shutil.rmtree(srv.data_dir / ".index")  # rebuilt from the manifests
    srv.start()
    assert ids(srv.client(), "p/log")[0] == [1, 2, 3]
    assert patch(srv.client(), "p/log", rows(4))["version"] == 4
    assert ids(srv.client(), "p/log")[0] == [1, 2, 3, 4]


@pytest.mark.embedded_only  # waits for the put's temp file in the data dir
def test_a_patch_never_lands_on_a_key_deleted_and_written_again(quiver):
    """The patch's compare-and-set is on the blob it was planned over, not the number."""
    srv = quiver()
    client = srv.client()
    put(client, "p/aba", rows(1))
    writer, reader = client.do_put(descriptor("p/aba"), rows(1).schema)
    writer.write_metadata(json.dumps({"patch": True}).encode())
    writer.write_table(rows(2))
    wait_for(lambda: srv.tmp_files(), what="the patch to begin on the server")
    client.do_action(pa.flight.Action("delete", b'{"key": "p/aba"}'))
    assert put(client, "p/aba", rows(100))["version"] == 1  # numbers restart after a delete
    with pytest.raises(pa.ArrowException, match="version conflict"):
        writer.done_writing()
        reader.read()
        writer.close()
    assert ids(client, "p/aba")[0] == [100]


def test_a_patch_keeps_the_links_of_its_object(quiver):
    """Invalidating what an object was computed from, or its tag, reaches its patches."""
    client = quiver().client()
    put(client, "p/src", rows(0))
    for key in ("p/by-dep", "p/by-tag"):
        put(client, key, rows(1), app_metadata=json.dumps(
            {"depends_on": ["p/src"], "tags": ["t:" + key]}).encode())
        patch(client, key, rows(2))
        assert ids(client, key)[0] == [1, 2]
    client.do_action(pa.flight.Action("invalidate", b'{"key": "p/src"}'))
    with pytest.raises(KeyError):
        get(client, "p/by-dep")
    client.do_action(pa.flight.Action("invalidate-tag", b'{"tag": "t:p/by-tag"}'))
    with pytest.raises(KeyError):
        get(client, "p/by-tag")


def test_a_flame_patch_past_max_object_bytes_is_refused_while_it_streams(quiver):
    """A Flame PATCH is held for its retries, so it is bounded as it arrives."""
    srv = quiver(args=["--max-object-bytes", "1048576"])
    client = srv.client()
    schema = pa.schema([("version", pa.uint64()), ("data", pa.binary())])

    def send(descriptor_, payload):
        writer, reader = client.do_put(descriptor_, schema)
        for piece in payload:
            writer.write_batch(pa.record_batch([pa.array([0], pa.uint64()),
                                                pa.array([piece], pa.binary())], schema=schema))
        writer.done_writing()
        reader.read()
        writer.close()

    send(pa.flight.FlightDescriptor.for_path("app/s/o"), [b"base"])
    with pytest.raises(pa.flight.FlightServerError, match="the patch of .* exceeds max_object_bytes") as e:
        send(pa.flight.FlightDescriptor.for_command(b"PATCH:app/s/o"), [b"x" * 300_000] * 8)
    assert json.loads(e.value.extra_info)["error"] == "too_large"
    rows_ = client.do_get(pa.flight.Ticket(b"app/s/o:0")).read_all()
    assert rows_.column("data").to_pylist()[-1] == b"base"
