"""Durability: restart on the same data dir, SIGKILL mid-put, damaged entries found when the
index is rebuilt from the manifests (--rebuild-index; a plain restart reads the index journal,
tested in test_index_journal.py)."""

import json
import re
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pytest

from quiver_util import action, corrupt_byte, descriptor, get, get_table, manifest_path, manifest_versions, put, stats, write_config

# "recovered K keys, V versions, SIZE in T ms; removed N temp files and E expired results;
# quarantined Q damaged entries; S superseded manifests and U unreferenced blobs left for the
# garbage sweep" (data no manifest names is never deleted at startup: in shared mode it may be
# another node's write in progress; the garbage sweep removes it after its grace period)
RECOVERY_RE = re.compile(
    r"recovered (?P<keys>\d+) keys, (?P<versions>\d+) versions, .* in \d+ ms; removed "
    r"(?P<temps>\d+) temp files and \d+ expired results; quarantined (?P<quarantined>\d+) "
    r"damaged entries; \d+ superseded manifests and (?P<orphans>\d+) unreferenced blobs")


# "loaded K keys, V versions, SIZE from the index journal (...) in T ms; checked C entries
# published after the last flush: D taken out of service, M manifests written again; removed N
# temp files"
JOURNAL_RE = re.compile(
    r"loaded (?P<keys>\d+) keys, (?P<versions>\d+) versions, .* from the index journal .*; "
    r"checked \d+ entries published after the last flush: (?P<dropped>\d+) taken out of "
    r"service, \d+ manifests written again; removed (?P<temps>\d+) temp files")

REBUILD = ["--rebuild-index"]


def journal_summary(server):
    matches = JOURNAL_RE.findall(server.log())
    assert len(matches) == 1, f"expected one journal recovery line in:\n{server.log()}"
    return {k: int(v) for k, v in JOURNAL_RE.search(server.log()).groupdict().items()}


def recovery_summary(server):
    matches = RECOVERY_RE.findall(server.log())
    assert len(matches) == 1, f"expected one recovery line in:\n{server.log()}"
    m = RECOVERY_RE.search(server.log())
    return {k: int(v) for k, v in m.groupdict().items()}


def table_for(tag, n=6):
    return pa.table({"tag": pa.array([f"{tag}-{i}" for i in range(n)]),
                     "x": pa.array([float(i) for i in range(n)])}, metadata={"tag": tag})


def manifest(server, key, version):
    path = manifest_path(server.data_dir, key, version)
    return path, json.loads(path.read_text())


def test_restart_keeps_everything(server):
    client = server.client()
    written = {}
    plan = {"s/a": 3, "s/b": 1, "ns/s/c": 2, "s/many": 5}
    for key, n in plan.items():
        for v in range(1, n + 1):
            t = table_for(f"{key}@{v}")
            assert put(client, key, t)["version"] == v
            written[(key, v)] = t
    before = stats(client)
    assert recovery_summary(server)["keys"] == 0

    server.stop()  # SIGTERM, asserts exit 0
    assert server.returncode == 0
    server.restart()
    client = server.client()

    # A clean restart reads the index journal, no manifest.
    assert journal_summary(server) == {"keys": 4, "versions": 3 + 1 + 2 + 3, "temps": 0,
                                       "dropped": 0}
    recovery = stats(client)["recovery"]
    assert recovery["source"] == "journal" and recovery["manifests_read"] == 0
    after = stats(client)
    for field in ("entries", "versions", "bytes"):
        assert after[field] == before[field], field
    for key, n in plan.items():
        got, meta, _, _ = get(client, key)
        assert meta["version"] == n and got.equals(written[(key, n)], check_metadata=True)
        for v in range(max(1, n - 2), n + 1):
            assert get_table(client, f"{key}@{v}").equals(written[(key, v)])
    for v in (1, 2):
        with pytest.raises(KeyError):
            get(client, f"s/many@{v}")
    assert {"/".join(p.decode() for p in i.descriptor.path) for i in client.list_flights(b"")} \
        == set(plan)

    # the version sequence continues, CAS included
    assert put(client, "s/a", table_for("next"), if_version=3)["version"] == 4
    assert put(client, "s/many", table_for("next"))["version"] == 6
    with pytest.raises(pa.ArrowException) as e:
        put(client, "s/b", table_for("stale"), if_version=0)
    assert "version conflict" in str(e.value)

    # and a second restart sees the new versions
    server.restart()
    client = server.client()
    assert get(client, "s/a")[1]["version"] == 4
    assert get_table(client, "s/many@6").equals(table_for("next"))

    # the manifests say the same as the journal
    listed = {(i.descriptor.path[0], i.total_bytes) for i in client.list_flights(b"")}
    server.restart(args=REBUILD)
    client = server.client()
    assert recovery_summary(server) == {"keys": 4, "versions": 3 + 1 + 2 + 3, "temps": 0,
                                        "orphans": 0, "quarantined": 0}
    assert {(i.descriptor.path[0], i.total_bytes) for i in client.list_flights(b"")} == listed
    assert get(client, "s/a")[1]["version"] == 4


def test_delete_persists_across_restart(server):
    client = server.client()
    put(client, "gone/a", table_for("a"))
    put(client, "gone/a", table_for("a2"))
    put(client, "kept/b", table_for("b"))
    action(client, "delete", {"key": "gone/a"})
    server.restart()
    client = server.client()
    with pytest.raises(KeyError):
        get(client, "gone/a")
    assert put(client, "gone/a", table_for("new"))["version"] == 1
    assert get_table(client, "kept/b").equals(table_for("b"))
    # the deleted versions' files are gone too: a rebuild finds nothing left over
    server.restart(args=REBUILD)
    client = server.client()
    assert recovery_summary(server)["orphans"] == 0
    assert get(client, "gone/a")[1]["version"] == 1


CRASH_CLIENT = textwrap.dedent("""
    import sys, numpy as np, pyarrow as pa, pyarrow.flight as flight
    location, nbatches = sys.argv[1], int(sys.argv[2])
    client = flight.connect(location)
    rng = np.random.default_rng(3)
    batch = pa.record_batch({"v": rng.integers(0, 1 << 62, size=1 << 17, dtype=np.int64)})
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("crash", "obj"), batch.schema)
    try:
        for i in range(nbatches):
            writer.write_batch(batch)   # 1 MiB each
        writer.done_writing()
        print("PUT-SUCCEEDED", reader.read().to_pybytes(), flush=True)
        writer.close()
    except Exception as e:
        print("PUT-FAILED", type(e).__name__, flush=True)
""")


def test_sigkill_mid_put(server):
    client = server.client()
    original = table_for("original", 1000)
    assert put(client, "crash/obj", original)["version"] == 1

    proc = subprocess.Popen([sys.executable, "-c", CRASH_CLIENT, server.location, "300"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tmp = server.data_dir / ".tmp"
    sizes = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            parts = [p for p in tmp.iterdir() if p.suffix == ".part"]
            if parts:
                try:
                    sizes.append(parts[0].stat().st_size)
                except FileNotFoundError:
                    pass
                # kill once the temp file holds a good part of the object and is growing
                if len(sizes) >= 2 and sizes[-1] > 32 << 20 and sizes[-1] > sizes[0]:
                    break
            time.sleep(0.005)
        parts_at_kill = [p.name for p in tmp.iterdir() if p.suffix == ".part"]
        server.kill()
        assert server.returncode == -9
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert parts_at_kill, f"no growing .part file seen (sizes {sizes[:5]}..., client: {out} {err})"
    assert "PUT-SUCCEEDED" not in out, "the put finished before the kill; test did not crash it"
    assert sizes[-1] < 300 << 20

    server.restart()
    client = server.client()
    summary = journal_summary(server)
    assert summary["temps"] == len(parts_at_kill) >= 1
    assert summary["dropped"] == 0
    assert summary["keys"] == 1 and summary["versions"] == 1
    assert server.tmp_files() == []
    got, meta, _, _ = get(client, "crash/obj")
    assert meta["version"] == 1
    assert got.equals(original, check_metadata=True)
    assert len(server.data_files()) == 1
    # the key continues normally
    assert put(client, "crash/obj", table_for("after"), if_version=1)["version"] == 2


def test_checksum_mismatch_is_quarantined(server):
    client = server.client()
    bad_t, good_t = table_for("bad", 500), table_for("good", 500)
    put(client, "q/bad", bad_t)
    put(client, "q/good", good_t)
    put(client, "q/multi", table_for("m1"))
    put(client, "q/multi", table_for("m2"))
    server.stop()

    mpath, meta = manifest(server, "q/bad", 1)
    blob = server.data_dir / meta["blob"]
    size = blob.stat().st_size
    corrupt_byte(blob, size // 2)  # same size, different content
    assert blob.stat().st_size == size

    server.restart(args=REBUILD)
    client = server.client()
    summary = recovery_summary(server)
    assert summary["quarantined"] == 1
    assert summary["keys"] == 2 and summary["versions"] == 3
    assert "quarantined 1 damaged entries" in server.log()
    assert re.search(r"quarantining manifests/q/bad/@v/0+1-[^ ]+\.json: .*fails its checksum",
                     server.log()), server.log()

    with pytest.raises(KeyError):
        get(client, "q/bad")
    with pytest.raises(KeyError):
        client.get_flight_info(descriptor("q/bad"))
    assert "q/bad" not in {"/".join(p.decode() for p in i.descriptor.path)
                           for i in client.list_flights(b"")}
    # moved, not deleted, and never served
    assert not blob.exists() and not mpath.exists()
    q = server.data_dir / "quarantine"
    assert (q / meta["blob"]).is_file()
    assert (q / mpath.relative_to(server.data_dir)).is_file()
    assert (q / meta["blob"]).stat().st_size == size
    # other keys are fine
    assert get_table(client, "q/good").equals(good_t)
    assert get_table(client, "q/multi").equals(table_for("m2"))
    assert get_table(client, "q/multi@1").equals(table_for("m1"))
    # the damaged key starts again at 1
    assert put(client, "q/bad", bad_t, if_version=0)["version"] == 1

    # a second rebuild finds nothing more to quarantine
    server.restart()
    assert recovery_summary(server)["quarantined"] == 0


def test_damaged_latest_version_falls_back(server):
    client = server.client()
    put(client, "q/ver", table_for("v1"))
    put(client, "q/ver", table_for("v2"))
    server.stop()
    _, meta = manifest(server, "q/ver", 2)
    corrupt_byte(server.data_dir / meta["blob"], 100)
    server.restart(args=REBUILD)
    client = server.client()
    assert recovery_summary(server)["quarantined"] == 1
    with pytest.raises(KeyError):
        get(client, "q/ver@2")
    got, m, _, _ = get(client, "q/ver")
    assert m["version"] == 1 and got.equals(table_for("v1"))


def test_size_mismatch_quarantined_even_without_verify(server):
    client = server.client()
    put(client, "q/short", table_for("short", 300))
    put(client, "q/flipped", table_for("flipped", 300))
    server.stop()
    _, short_meta = manifest(server, "q/short", 1)
    with open(server.data_dir / short_meta["blob"], "r+b") as f:
        f.truncate(short_meta["bytes"] - 8)
    _, flip_meta = manifest(server, "q/flipped", 1)
    corrupt_byte(server.data_dir / flip_meta["blob"], flip_meta["bytes"] // 2)

    server.restart(args=["--no-verify-on-startup", *REBUILD])
    client = server.client()
    summary = recovery_summary(server)
    assert summary["quarantined"] == 1  # only the size mismatch is detected
    assert "has %d bytes, the manifest says %d" % (short_meta["bytes"] - 8, short_meta["bytes"]) \
        in server.log()
    with pytest.raises(KeyError):
        get(client, "q/short")
    # checksums were not verified: the flipped entry is still indexed
    assert client.get_flight_info(descriptor("q/flipped")).total_records == 300

    # with verification back on, the flipped one is caught as well
    server.restart(args=REBUILD)
    assert recovery_summary(server)["quarantined"] == 1
    with pytest.raises(KeyError):
        get(server.client(), "q/flipped")


def test_unreadable_manifest_and_orphans(server):
    client = server.client()
    put(client, "m/bad", table_for("bad"))
    put(client, "m/ok", table_for("ok"))
    server.stop()
    mpath, meta = manifest(server, "m/bad", 1)
    mpath.write_text("{ this is not json")
    orphan = server.data_dir / "data" / "ab" / ("ab" + "0" * 30 + ".arrows")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"left over by a crash between data commit and manifest")
    stray_tmp = server.data_dir / ".tmp" / "7-deadbeef.part"
    stray_tmp.write_bytes(b"partial")

    server.restart(args=REBUILD)
    client = server.client()
    summary = recovery_summary(server)
    assert summary["quarantined"] == 1
    assert summary["temps"] == 1
    # With a manifest unreadable, unreferenced data may be that entry's: it is set aside in
    # quarantine (never deleted) -- the orphan and the unreadable manifest's data alike.
    assert summary["orphans"] == 0
    assert not orphan.exists() and not stray_tmp.exists()
    assert (server.data_dir / "quarantine" / orphan.relative_to(server.data_dir)).is_file()
    assert (server.data_dir / "quarantine" / meta["blob"]).is_file()
    assert (server.data_dir / "quarantine" / mpath.relative_to(server.data_dir)).is_file()
    with pytest.raises(KeyError):
        get(client, "m/bad")
    assert get_table(client, "m/ok").equals(table_for("ok"))
    assert len(server.data_files()) == 1


def test_unreferenced_blobs_wait_for_the_garbage_sweep(quiver, workdir):
    """Data no manifest names is left at startup (it could be another node's write in
    progress) and removed by the garbage sweep once older than its grace period."""
    config = write_config(workdir, "sweep.json", {"garbage_grace_s": 0.5, "sweep_interval_s": 0.2})
    server = quiver(args=["--config", str(config)])
    client = server.client()
    put(client, "kept/obj", table_for("kept"))
    server.stop()
    orphan = server.data_dir / "data" / "ab" / ("nodeX-ab" + "0" * 30 + ".arrows")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"left over by a crash between data commit and manifest")
    stray_manifest = server.data_dir / "manifests" / "kept" / "obj" / "@v" / (
        f"{1:020d}-nodeX-00000000deadbeef.json")
    # A writer that lost the race for version 1 and crashed before removing its manifest;
    # of two claims the earliest created wins.
    loser = manifest(server, "kept/obj", 1)[1]
    loser["created_ms"] += 1000
    stray_manifest.write_text(json.dumps(loser))
    server.args += REBUILD
    server.start()
    assert recovery_summary(server)["orphans"] == 1
    assert "1 superseded manifests" in server.log()
    server.wait_for_log("garbage sweep: removed 1 manifests, 1 data blobs", timeout=15)
    assert not orphan.exists() and not stray_manifest.exists()
    # the published entry, its manifest and data stay
    assert get_table(server.client(), "kept/obj").equals(table_for("kept"))
    assert manifest_versions(server.data_dir, "kept/obj") == [1]
    assert len(server.data_files()) == 1


def test_unusual_but_valid_keys_survive_restart(server):
    # Segments that look like store internals, dots, dashes, and a key that is a
    # directory prefix of another key on disk (s/o and s/o/x).
    keys = ["s/o", "s/o/x", ".tmp/x", ".../o", "-/_", "manifests/x", "x/.tmp/y",
            "data/q", "quarantine/z"]
    client = server.client()
    for k in keys:
        assert put(client, k, table_for(k))["version"] == 1
    server.restart(args=REBUILD)
    client = server.client()
    summary = recovery_summary(server)
    assert summary["keys"] == len(keys) and summary["quarantined"] == 0
    assert summary["orphans"] == 0 and summary["temps"] == 0
    for k in keys:
        assert get_table(client, k).equals(table_for(k)), k
    # deleting the shorter key leaves the longer one alone
    assert action(client, "delete", "s/o") == {"deleted": ["s/o"], "versions": 1}
    server.restart()
    client = server.client()
    assert get_table(client, "s/o/x").equals(table_for("s/o/x"))
    with pytest.raises(KeyError):
        get(client, "s/o")
    assert len(server.data_files()) == len(keys) - 1
