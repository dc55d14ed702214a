"""Bad input: every refused put or read names the problem, stores nothing, leaves the
previous version intact and served, and leaves no temp file behind."""

import json
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flight_raw import IpcMessage, encode_flight_data, ipc_messages, raw_do_put
from quiver_util import descriptor, get, get_table, manifest_versions, put, stats, write_config

KEY = ["s", "o"]


def sample(n=100, tag="new"):
    return pa.table({"i": pa.array(range(n), pa.int64()),
                     "s": pa.array([f"{tag}{k}" for k in range(n)])})


@pytest.fixture
def seeded(server):
    """A server holding s/o at version 1."""
    client = server.client()
    original = sample(10, "original")
    assert put(client, "s/o", original)["version"] == 1
    return server, client, original


def wait_tmp_empty(server, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.tmp_files() == []:
            return
        time.sleep(0.02)
    raise AssertionError(f"temp files left behind: {server.tmp_files()}")


def assert_intact(server, client, original, version=1):
    got, meta, _, _ = get(client, "s/o")
    assert meta["version"] == version
    assert got.equals(original)
    assert client.get_flight_info(descriptor("s/o")).total_records == original.num_rows
    wait_tmp_empty(server)
    assert len(server.data_files()) == min(version, 3)
    assert manifest_versions(server.data_dir, "s/o") == \
        list(range(max(1, version - 2), version + 1))


# -- malformed and truncated IPC (raw gRPC client) -----------------------------------------
def good_messages():
    t = sample(100)
    msgs = ipc_messages(t.schema, t.to_batches())
    assert [m.type for m in msgs] == ["schema", "record batch"]
    return msgs


def test_raw_client_sanity(seeded):
    # The raw client itself produces valid puts, so failures below are about the damage.
    server, client, original = seeded
    outcome = raw_do_put(server.location, KEY, good_messages())
    assert outcome.ok, outcome
    assert json.loads(outcome.results[0])["version"] == 2
    assert get_table(client, "s/o").equals(sample(100))


def check_malformed(server, client, original, outcome, *expected):
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT, outcome
    assert outcome.results == []
    for text in expected:
        assert text in outcome.details, (text, outcome.details)
    assert outcome.trailers.get("x-arrow-status") == "4"  # arrow::StatusCode::Invalid
    assert_intact(server, client, original)


def test_garbage_record_batch_header(seeded):
    server, client, original = seeded
    schema_msg, batch = good_messages()
    bad = IpcMessage("record batch", b"\x01\x02 this is not a flatbuffer \xff" * 3, batch.body)
    outcome = raw_do_put(server.location, KEY, [schema_msg, bad])
    check_malformed(server, client, original, outcome, "DoPut 's/o'", "malformed Arrow IPC",
                    "flatbuffer")


def test_garbage_after_good_batches(seeded):
    server, client, original = seeded
    schema_msg, batch = good_messages()
    bad = IpcMessage("record batch", b"\x00" * 7 + b"garbage", b"")
    outcome = raw_do_put(server.location, KEY, [schema_msg, batch, batch, bad])
    check_malformed(server, client, original, outcome, "malformed Arrow IPC",
                    "nothing was stored")


def test_garbage_schema_message(seeded):
    # The first message is decoded by Arrow Flight itself, before Quiver's DoPut runs.
    server, client, original = seeded
    _, batch = good_messages()
    bad_schema = IpcMessage("schema", b"\x10\x00\x00\x00garbage-garbage-garbage", b"")
    outcome = raw_do_put(server.location, KEY, [bad_schema, batch])
    assert outcome.code != grpc.StatusCode.OK and outcome.results == []
    assert "flatbuffers" in outcome.details, outcome
    assert_intact(server, client, original)


def test_truncated_header(seeded):
    server, client, original = seeded
    schema_msg, batch = good_messages()
    cut = IpcMessage("record batch", batch.header[: len(batch.header) // 2], batch.body)
    outcome = raw_do_put(server.location, KEY, [schema_msg, cut])
    check_malformed(server, client, original, outcome, "malformed Arrow IPC")


@pytest.mark.parametrize("keep", [0, 0.5, 0.99])
def test_truncated_body(seeded, keep):
    server, client, original = seeded
    schema_msg, batch = good_messages()
    cut = IpcMessage("record batch", batch.header, batch.body[: int(len(batch.body) * keep)])
    outcome = raw_do_put(server.location, KEY, [schema_msg, batch, cut])
    check_malformed(server, client, original, outcome, "malformed Arrow IPC")


def test_header_claims_more_rows_than_sent(seeded):
    server, client, original = seeded
    schema_msg, batch = good_messages()
    n = struct.pack("<q", 100)
    # RecordBatch.length and each FieldNode.length are int64 100s in the flatbuffer
    assert batch.header.count(n) >= 2
    lying = IpcMessage("record batch", batch.header.replace(n, struct.pack("<q", 1_000_000)),
                       batch.body)
    outcome = raw_do_put(server.location, KEY, [schema_msg, lying])
    check_malformed(server, client, original, outcome, "malformed record batch 0",
                    "too small")


def test_invalid_offsets_in_body(seeded):
    # Structurally fine, but string offsets point outside the data: ValidateFull catches it.
    server, client, original = seeded
    t = pa.table({"s": pa.array(["aa", "bbb", "c", "dddd"])})
    schema_msg, batch = ipc_messages(t.schema, t.to_batches())
    offsets = t.column("s").chunk(0).buffers()[1].to_pybytes()
    assert batch.body.count(offsets) == 1
    broken = struct.pack("<5i", 0, 2, 5, 400, 10)
    assert len(broken) == len(offsets)
    bad = IpcMessage("record batch", batch.header, batch.body.replace(offsets, broken))
    outcome = raw_do_put(server.location, KEY, [schema_msg, bad])
    check_malformed(server, client, original, outcome, "malformed record batch 0")


def test_invalid_utf8_refused(seeded):
    server, client, original = seeded
    t = pa.table({"s": pa.array(["abcd", "efgh"])})
    schema_msg, batch = ipc_messages(t.schema, t.to_batches())
    assert batch.body.count(b"abcdefgh") == 1
    bad = IpcMessage("record batch", batch.header, batch.body.replace(b"abcdefgh", b"ab\xffdefgh"))
    outcome = raw_do_put(server.location, KEY, [schema_msg, bad])
    check_malformed(server, client, original, outcome, "malformed record batch 0")


def test_schema_change_mid_stream(seeded):
    server, client, original = seeded
    schema_msg, batch = good_messages()
    other = pa.table({"x": pa.array([1.5, 2.5])})
    other_schema, other_batch = ipc_messages(other.schema, other.to_batches())
    outcome = raw_do_put(server.location, KEY, [schema_msg, batch, other_schema, other_batch])
    check_malformed(server, client, original, outcome, "malformed Arrow IPC")


def test_batch_of_another_schema(seeded):
    server, client, original = seeded
    schema_msg, batch = good_messages()
    other = pa.table({"a": [1], "b": [2], "c": [3]})
    _, other_batch = ipc_messages(other.schema, other.to_batches())
    outcome = raw_do_put(server.location, KEY, [schema_msg, batch, other_batch])
    check_malformed(server, client, original, outcome, "malformed")


# -- client disconnect ------------------------------------------------------------------
DISCONNECT_CLIENT = textwrap.dedent("""
    import os, signal, sys, numpy as np, pyarrow as pa, pyarrow.flight as flight
    client = flight.connect(sys.argv[1])
    batch = pa.record_batch({"v": pa.array(np.arange(1 << 17, dtype=np.int64))})
    writer, _ = client.do_put(flight.FlightDescriptor.for_path("s", "o"), batch.schema)
    for _ in range(8):
        writer.write_batch(batch)
    print("WROTE", flush=True)
    sys.stdin.readline()          # wait until the test has seen the server's temp file
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(3)
""")


def disconnect_mid_put(server, how):
    proc = subprocess.Popen([sys.executable, "-c", DISCONNECT_CLIENT, server.location, how],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WROTE"
        deadline = time.monotonic() + 20
        while not server.tmp_files():
            assert time.monotonic() < deadline, "the server never started writing the put"
            time.sleep(0.01)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode


@pytest.mark.parametrize("how", ["kill", "exit"])
def test_client_disconnect_mid_put(seeded, how):
    server, client, original = seeded
    before = stats(client)
    rc = disconnect_mid_put(server, how)
    assert rc == (-signal.SIGKILL if how == "kill" else 3)
    wait_tmp_empty(server)
    deadline = time.monotonic() + 10
    while stats(client)["put_failures"] == before["put_failures"]:
        assert time.monotonic() < deadline, "put_failures never counted the abandoned put"
        time.sleep(0.05)
    after = stats(client)
    assert after["put_failures"] == before["put_failures"] + 1
    assert after["puts"] == before["puts"]
    assert server.running()
    assert_intact(server, client, original)
    # and the server keeps working
    assert put(client, "s/o", sample(3), if_version=1)["version"] == 2


def test_cancelled_puts_store_nothing(seeded):
    """Clients that cancel (RST_STREAM) mid-put, at varying points: nothing is committed."""
    server, client, original = seeded
    before = stats(client)
    t = sample(1000)
    schema_msg, batch = ipc_messages(t.schema, t.to_batches())
    target = server.location[len("grpc://"):]
    rounds = 20
    for i in range(rounds):
        sent = threading.Event()
        release = threading.Event()

        def frames():
            yield encode_flight_data(path=KEY, header=schema_msg.header)
            for _ in range(1 + i % 4):
                yield encode_flight_data(header=batch.header, body=batch.body)
            sent.set()
            release.wait(10)  # never half-close before the cancel

        with grpc.insecure_channel(target) as channel:
            call = channel.stream_stream("/arrow.flight.protocol.FlightService/DoPut",
                                         request_serializer=None,
                                         response_deserializer=None)(frames())
            assert sent.wait(10)
            deadline = time.monotonic() + 10
            while not server.tmp_files():  # the server has begun storing the put
                assert time.monotonic() < deadline
                time.sleep(0.002)
            time.sleep(0.002 * (i % 5))
            call.cancel()
            release.set()
            assert call.code() == grpc.StatusCode.CANCELLED
        wait_tmp_empty(server)
    deadline = time.monotonic() + 10
    while stats(client)["put_failures"] < before["put_failures"] + rounds:
        assert time.monotonic() < deadline, stats(client)
        time.sleep(0.05)
    after = stats(client)
    assert after["puts"] == before["puts"]
    assert after["put_failures"] == before["put_failures"] + rounds
    assert_intact(server, client, original)


def test_client_disconnect_is_logged(seeded):
    # docs/api.md: "client disconnected | CANCELLED (logged by the server)"
    server, client, original = seeded
    disconnect_mid_put(server, "kill")
    wait_tmp_empty(server)
    server.wait_for_log("client disconnected", timeout=10)


# -- oversized put ------------------------------------------------------------------------
def test_oversized_put(quiver):
    server = quiver(args=["--max-object-bytes", "1MiB"])
    client = server.client()
    original = sample(10, "original")
    put(client, "s/o", original)
    before = stats(client)
    big = pa.table({"v": np.arange(200_000, dtype=np.int64)})  # 1.6 MB
    for data in (big, pa.Table.from_batches(big.to_batches(max_chunksize=10_000))):
        with pytest.raises(flight.FlightServerError) as e:
            put(client, "s/o", data)
        msg = str(e.value)
        assert "max_object_bytes" in msg and "1048576 bytes" in msg
        assert "resource exhausted" in msg and "nothing was stored" in msg
        assert json.loads(e.value.extra_info) == {
            "error": "too_large", "setting": "max_object_bytes", "limit": 1048576}
        assert_intact(server, client, original)
    after = stats(client)
    assert after["put_failures"] == before["put_failures"] + 2
    assert after["puts"] == before["puts"]
    # Arrow's own status code travels in the trailers: CapacityError (6)
    outcome = raw_do_put(server.location, KEY, ipc_messages(big.schema, big.to_batches()))
    assert outcome.trailers.get("x-arrow-status") == "6", outcome
    assert "max_object_bytes" in outcome.details
    # a new key that is too big is not created at all
    with pytest.raises(flight.FlightServerError):
        put(client, "s/new", big)
    with pytest.raises(KeyError):
        get(client, "s/new")
    # just under the limit is fine
    ok = pa.table({"v": np.arange(100_000, dtype=np.int64)})  # ~800 kB
    assert put(client, "s/o", ok)["version"] == 2
    wait_tmp_empty(server)


def test_oversized_put_with_config_file(quiver, workdir):
    cfg = write_config(workdir, "quiver.json", {"max_object_bytes": "64KiB"})
    server = quiver(args=["--config", str(cfg)])
    client = server.client()
    with pytest.raises(flight.FlightServerError) as e:
        put(client, "s/o", pa.table({"v": np.arange(10_000, dtype=np.int64)}))
    assert "65536 bytes" in str(e.value)
    wait_tmp_empty(server)


# -- full disk ----------------------------------------------------------------------------
@pytest.fixture
def small_tmpfs(quiver, workdir):
    mnt = workdir / "tmpfs"
    mnt.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
                           capture_output=True, text=True, timeout=30)
    except FileNotFoundError as e:
        pytest.skip(f"cannot mount a tmpfs: {e}")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (mount -t tmpfs -o size=16m): "
                    f"exit {r.returncode}: {r.stderr.strip()}")
    yield mnt
    # The servers must be gone before unmounting (this fixture is torn down before the
    # quiver factory is).
    for srv in quiver.servers:
        srv.kill()
    for _ in range(50):
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    else:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk(quiver, small_tmpfs):
    # The default budget (10% of this 16 MiB filesystem) would refuse the put before the
    # disk fills; the disk is what is under test here.
    server = quiver(data_dir=small_tmpfs / "data", args=["--cache-size", "1GiB"])
    client = server.client()
    original = sample(10, "original")
    put(client, "s/o", original)
    before = stats(client)
    big = pa.table({"v": np.arange(4 << 20, dtype=np.int64)})  # 32 MiB > 16 MiB tmpfs
    with pytest.raises(flight.FlightServerError) as e:
        put(client, "s/o", big)
    msg = str(e.value)
    assert "no space left on device" in msg and "DoPut 's/o'" in msg
    assert_intact(server, client, original)
    assert stats(client)["put_failures"] == before["put_failures"] + 1
    # the space of the failed put was released: a put that fits works again
    fits = pa.table({"v": np.arange(1 << 20, dtype=np.int64)})  # 8 MiB
    assert put(client, "s/o", fits, if_version=1)["version"] == 2
    assert get_table(client, "s/o").equals(fits)
    # a restart on the (full-ish) disk recovers cleanly
    server.restart()
    assert get(server.client(), "s/o")[1]["version"] == 2
    server.stop()


# -- bad keys, tickets, options -----------------------------------------------------------
BAD_KEYS = [
    (["..", "o"], "'..'"),
    (["s", "."], "'.'"),
    (["a b", "o"], "'a b'"),
    (["s", "o/x"], "'o/x'"),
    (["s", ""], "empty"),
    (["x" * 129, "o"], "129 characters"),
    (["s"], "got 1"),
    (["a", "b", "c", "d"], "got 4"),
    (["s", "ö"], "outside [A-Za-z0-9._-]"),
]


@pytest.mark.parametrize("path,expected", BAD_KEYS, ids=[repr(k)[:30] for k, _ in BAD_KEYS])
def test_bad_key_in_descriptor(seeded, path, expected):
    server, client, original = seeded
    t = sample(5)
    with pytest.raises(pa.ArrowInvalid) as e:
        put(client, path, t)
    assert expected in str(e.value)
    for call in (client.get_flight_info, client.get_schema):
        with pytest.raises(pa.ArrowInvalid) as e:
            call(flight.FlightDescriptor.for_path(*path))
        assert expected in str(e.value)
    assert_intact(server, client, original)
    # nothing escaped the data dir
    assert not (server.data_dir.parent / "o").exists()


def test_max_length_segment_is_fine(seeded):
    server, client, _ = seeded
    key = ["x" * 128, "o"]
    assert put(client, key, sample(2))["version"] == 1
    assert get_table(client, "/".join(key)).equals(sample(2))


BAD_TICKETS = [
    (b"../o", "'..'"),
    (b"a b/o", "'a b'"),
    (("x" * 129 + "/o").encode(), "129 characters"),
    (b"s", "got 1"),
    (b"a/b/c/d", "got 4"),
    (b"s/o@0", "ticket version '0' is not a positive integer"),
    (b"s/o@x", "ticket version 'x' is not a positive integer"),
    (b"s/o@", "ticket version '' is not a positive integer"),
    (b"s/o@-1", "ticket version '-1'"),
    (b"s/o@1.5", "ticket version '1.5'"),
    (b"s/o@99999999999999999999999", "is not a positive integer"),
    (b"", "empty ticket"),
    (b'{"key": ', "not a valid JSON object"),
    (b"{}", "needs a string field 'key'"),
    (b'{"key": 5}', "needs a string field 'key'"),
    (b'{"key": "s/o", "version": 0}', "'version' must be a positive integer"),
    (b'{"key": "s/o", "version": "1"}', "'version' must be a positive integer"),
    (b'{"key": "s/o", "version": -2}', "'version' must be a positive integer"),
    (b'{"key": "s/o", "if_none_match": 1.5}', "'if_none_match' must be a positive integer"),
    (b'{"key": "s/o", "bogus": 1}', "unknown ticket field 'bogus'"),
    (b'{"key": "../o"}', "'..'"),
]


@pytest.mark.parametrize("ticket,expected", BAD_TICKETS, ids=[t[:24].decode() or "empty"
                                                            for t, _ in BAD_TICKETS])
def test_bad_ticket(seeded, ticket, expected):
    server, client, original = seeded
    before = stats(client)
    with pytest.raises(pa.ArrowInvalid) as e:
        get(client, ticket)
    assert expected in str(e.value)
    assert_intact(server, client, original)
    after = stats(client)
    assert after["misses"] == before["misses"]  # refused, not looked up


BAD_OPTIONS = [
    (b'{"bogus": 1}', "unknown DoPut option 'bogus'"),
    (b'{"if_version": 1, "ttl": 5}', "unknown DoPut option 'ttl'"),
    (b"not json", "must be a JSON object"),
    (b"[1, 2]", "must be a JSON object"),
    (b'"if_version"', "must be a JSON object"),
    (b'{"if_version": -1}', "if_version must be a non-negative integer, got -1"),
    (b'{"if_version": "1"}', 'if_version must be a non-negative integer, got "1"'),
    (b'{"if_version": 1.0}', "if_version must be a non-negative integer"),
    (b'{"if_version": null}', "if_version must be a non-negative integer"),
]


@pytest.mark.parametrize("metadata,expected", BAD_OPTIONS,
                         ids=[m.decode()[:24] for m, _ in BAD_OPTIONS])
def test_bad_put_options(seeded, metadata, expected):
    server, client, original = seeded
    with pytest.raises(pa.ArrowInvalid) as e:
        put(client, "s/o", sample(5), app_metadata=metadata)
    assert expected in str(e.value)
    assert "DoPut 's/o'" in str(e.value)
    assert_intact(server, client, original)
    # same through the first batch's metadata
    writer, reader = client.do_put(descriptor("s/o"), sample(5).schema)
    with pytest.raises(pa.ArrowInvalid) as e:
        writer.write_with_metadata(sample(5).to_batches()[0], metadata)
        writer.done_writing()
        reader.read()
        writer.close()
    assert expected in str(e.value)
    assert_intact(server, client, original)


def test_empty_options_metadata_is_no_options(seeded):
    server, client, original = seeded
    # An empty metadata message reads like the end of the stream in Arrow's reader: the
    # batches after it must still be part of the put (not a 0-row commit racing them).
    assert put(client, "s/o", sample(5), app_metadata=b"")["version"] == 2
    assert get_table(client, "s/o").equals(sample(5))
    assert put(client, "s/o", sample(6), app_metadata=b"{}")["version"] == 3
    assert get_table(client, "s/o").equals(sample(6))


def test_command_descriptor_put_refused(seeded):
    server, client, original = seeded
    t = sample(5)
    writer, reader = client.do_put(flight.FlightDescriptor.for_command(b"s/o"), t.schema)
    with pytest.raises(pa.ArrowInvalid) as e:
        writer.write_table(t)
        writer.done_writing()
        reader.read()
        writer.close()
    assert "PATH descriptor" in str(e.value)
    assert_intact(server, client, original)


# -- a put the client aborts ----------------------------------------------------------------
@pytest.mark.parametrize("before_data", [False, True])
def test_a_put_the_client_aborts_stores_nothing(seeded, before_data):
    """{"abort": reason} as a metadata-only message discards the put (docs/api.md)."""
    server, client, original = seeded
    before = stats(client)
    t = sample(1000)
    writer, reader = client.do_put(descriptor("s/o"), t.schema)
    if not before_data:
        writer.write_table(t)
    writer.write_metadata(json.dumps({"abort": "the source failed"}).encode())
    with pytest.raises(flight.FlightCancelledError, match="aborted the put"):
        writer.done_writing()
        reader.read()
        writer.close()
    assert stats(client)["put_failures"] == before["put_failures"] + 1
    assert_intact(server, client, original)
