"""The embedded index's journal (snapshot + log in <data dir>/.index) and the `durability`
setting: what a restart reads, what a crash keeps, what damage does."""

import json
import random
import shutil
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from management_util import entry_map, put_with
from quiver_util import action, corrupt_byte, get, get_table, manifest_path, put, stats, write_config

pytestmark = pytest.mark.usefixtures("embedded_only")


@pytest.fixture
def embedded_only(deployment):
    if deployment != "embedded":
        pytest.skip("the index journal and durability are an embedded node's")


def table_for(tag, n=3):
    return pa.table({"tag": pa.array([f"{tag}-{i}" for i in range(n)]),
                     "i": pa.array(range(n), pa.int64())})


def listing(client):
    """key -> (version, bytes) of every key's latest version."""
    return {k: (row["version"], row["bytes"]) for k, row in entry_map(client).items()}


def recovery(client):
    return stats(client)["recovery"]


def test_clean_restart_reads_the_snapshot_and_no_manifest(server):
    client = server.client()
    for i in range(40):
        put(client, f"j/k{i % 10}", table_for(f"{i}"))
    action(client, "delete", {"key": "j/k3"})
    before = listing(client)
    server.stop()
    # Without the manifests the journal is all there is to read.
    manifests = server.data_dir / "manifests"
    aside = server.data_dir.parent / "manifests-aside"
    shutil.move(manifests, aside)
    server.start()
    client = server.client()
    r = recovery(client)
    assert r["source"] == "journal" and r["manifests_read"] == 0, r
    assert r["log_records"] == 0 and r["snapshot_rows"] == 9 * 3, r
    assert listing(client) == before
    assert get_table(client, "j/k9").equals(table_for("39"))
    assert get_table(client, "j/k9@2").equals(table_for("19"))
    with pytest.raises(KeyError):
        get(client, "j/k3")
    server.stop()
    shutil.move(aside, manifests)
    # and the manifests say the same
    server.restart(args=["--rebuild-index"])
    client = server.client()
    assert recovery(client)["source"] == "manifests"
    assert recovery(client)["why"] == "asked to rebuild the index (--rebuild-index)"
    assert listing(client) == before


class Burst:
    """Writers that each own their keys, so that what was acknowledged is known per key:
    puts, deletes, and invalidations cascading to a dependent key."""

    def __init__(self, server, name, writers=4):
        self.server = server
        self.name = name  # each burst its own keys
        self.expected = {}      # key -> latest version, or None if removed
        self.in_flight = {}     # writer -> keys its unacknowledged operation touches
        self.acknowledged = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(w,), daemon=True)
                        for w in range(writers)]

    def start(self):
        for t in self.threads:
            t.start()

    def run(self, w):
        rng = random.Random(w)
        # Its own client, closed by this thread: the server's are closed when it is killed,
        # which must not happen under a call in progress.
        client = flight.connect(self.server.location)
        base, dep = f"{self.name}w{w}/base", f"{self.name}w{w}/dep"
        version = {}
        try:
            while not self.stop.is_set():
                op = rng.random()
                key = f"{self.name}w{w}/k{rng.randrange(6)}"
                if op < 0.6:
                    touched, new = [key], {key: version.get(key, 0) + 1}
                    with self.lock:
                        self.in_flight[w] = touched
                    meta = put(client, key, table_for(f"{key}-{new[key]}"))
                    assert meta["version"] == new[key]
                elif op < 0.75:
                    touched, new = [key], {key: None}
                    with self.lock:
                        self.in_flight[w] = touched
                    action(client, "delete", {"key": key})
                elif op < 0.9:
                    touched = [base, dep]
                    # a new version of base removes what was computed from it: dep
                    # starts again at 1
                    new = {base: version.get(base, 0) + 1, dep: 1}
                    with self.lock:
                        self.in_flight[w] = touched
                    put(client, base, table_for(f"{base}-{new[base]}"))
                    put_with(client, dep, table_for(f"{dep}-{new[dep]}"), depends_on=[base])
                else:
                    touched, new = [base, dep], {base: None, dep: None}
                    with self.lock:
                        self.in_flight[w] = touched
                    action(client, "invalidate", {"key": base})
                for k, v in new.items():
                    if v is None:
                        version.pop(k, None)
                    else:
                        version[k] = v
                with self.lock:
                    self.expected.update(new)
                    self.in_flight.pop(w, None)
                    self.acknowledged += 1
        except Exception:
            if not self.stop.is_set():
                raise  # the server died under it: expected only after the kill
        finally:
            client.close()

    def uncertain(self):
        with self.lock:
            return {k for keys in self.in_flight.values() for k in keys}


@pytest.mark.parametrize("durability", ["process", "fsync"])
def test_sigkill_during_a_burst_loses_nothing_acknowledged(quiver, durability):
    server = quiver(args=["--durability", durability])
    rng = random.Random()
    for round_ in range(3):
        burst = Burst(server, f"r{round_}")
        burst.start()
        target = rng.randrange(20, 120)
        deadline = time.monotonic() + 60
        while burst.acknowledged < target:
            assert time.monotonic() < deadline, "the writers made no progress"
            assert any(t.is_alive() for t in burst.threads), "every writer failed"
            time.sleep(0.005)
        uncertain_before = burst.uncertain()
        burst.stop.set()
        server.kill()
        for t in burst.threads:
            t.join(timeout=30)
        uncertain = uncertain_before | burst.uncertain()
        expected = dict(burst.expected)

        server.start()
        client = server.client()
        assert recovery(client)["source"] == "journal"
        found = listing(client)
        for key, version in expected.items():
            if key in uncertain:
                continue
            if version is None:
                assert key not in found, f"{key} was deleted, then came back"
            else:
                assert found.get(key, (None,))[0] == version, (key, version, found.get(key))
                assert get_table(client, key).equals(table_for(f"{key}-{version}"))
        ours = {k for k in found if k.startswith(f"r{round_}")}
        assert ours - uncertain <= set(expected), "keys nobody acknowledged"

        # The manifests agree with the journal, but for what was in flight at the kill.
        server.restart(args=["--rebuild-index"])
        rebuilt = listing(server.client())
        differ = {k for k in set(found) | set(rebuilt) if found.get(k) != rebuilt.get(k)}
        assert differ <= uncertain, (differ, uncertain)
        server.restart(args=["--durability", durability])  # the next round, journal again


def test_damaged_snapshot_is_set_aside_and_the_index_rebuilt(server):
    client = server.client()
    for i in range(20):
        put(client, f"d/k{i}", table_for(str(i)))
    before = listing(client)
    server.stop()
    journal = server.data_dir / ".index"
    (snapshot,) = journal.glob("snapshot-*.arrow")
    corrupt_byte(snapshot, snapshot.stat().st_size // 2)
    server.start()
    client = server.client()
    r = recovery(client)
    assert r["source"] == "manifests" and "checksum" in r["why"], r
    assert "is damaged" in server.log()
    (aside,) = journal.glob("damaged-*")
    assert (aside / snapshot.name).is_file()
    assert listing(client) == before
    # a new snapshot was written after the rebuild: the next restart reads it
    server.restart()
    assert recovery(server.client())["source"] == "journal"


def test_damaged_log_is_set_aside_and_the_index_rebuilt(server):
    client = server.client()
    for i in range(20):
        put(client, f"d/k{i}", table_for(str(i)))
    before = listing(client)
    server.kill()  # the puts are in the log only
    (log,) = (server.data_dir / ".index").glob("log-*")
    assert log.stat().st_size > 1000
    corrupt_byte(log, 24 + 12 + 30)  # inside the first record, not the last one
    server.start()
    client = server.client()
    r = recovery(client)
    assert r["source"] == "manifests" and "fails its checksum" in r["why"], r
    assert listing(client) == before


def test_entries_published_after_the_last_flush_are_checked(quiver):
    # No background flush during the test: everything put is "after the last flush".
    server = quiver(args=["--sync-interval-ms", "3600000"])
    client = server.client()
    for i in range(5):
        put(client, f"u/k{i}", table_for(str(i)))
    metas = {i: json.loads(manifest_path(server.data_dir, f"u/k{i}", 1).read_text())
             for i in range(5)}
    server.kill()
    # A power loss could leave a file short or torn: the journal's check must catch it.
    blob = server.data_dir / metas[4]["blob"]
    corrupt_byte(blob, blob.stat().st_size // 2)
    lost_manifest = manifest_path(server.data_dir, "u/k2", 1)
    lost_manifest.unlink()
    server.start()
    client = server.client()
    r = recovery(client)
    assert r["source"] == "journal"
    assert r["unsynced_checked"] == 5 and r["unsynced_dropped"] == 1, r
    assert "fails its checksum" in server.log()
    with pytest.raises(KeyError):
        get(client, "u/k4")
    assert (server.data_dir / "quarantine" / metas[4]["blob"]).is_file()
    for i in range(4):
        assert get_table(client, f"u/k{i}").equals(table_for(str(i)))
    # the lost manifest was written again, so a rebuild keeps the entry
    assert lost_manifest.is_file()
    server.restart(args=["--rebuild-index"])
    assert get_table(server.client(), "u/k2").equals(table_for("2"))


def test_fsync_mode_shares_flushes_between_concurrent_writers(quiver):
    server = quiver(args=["--durability", "fsync"])
    client = server.client()
    put(client, "f/warm", table_for("warm"))
    before = stats(client)["durability"]
    assert before["mode"] == "fsync"
    errors = []
    go = threading.Barrier(16)

    def writer(w):
        c = server.client()
        try:
            go.wait()
            for i in range(8):
                put(c, f"f/w{w}/k{i}", table_for(f"{w}-{i}"))
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    after = stats(client)["durability"]
    flushes = after["syncs"] - before["syncs"]
    assert 1 <= flushes < 16 * 8, after
    assert after["grouped"] > before["grouped"], after
    assert after["failures"] == 0


def test_process_mode_flushes_in_the_background(quiver):
    server = quiver(args=["--sync-interval-ms", "50"])
    client = server.client()
    assert stats(client)["durability"]["mode"] == "process"
    before = stats(client)["durability"]["syncs"]
    put(client, "p/k", table_for("p"))
    deadline = time.monotonic() + 10
    while stats(client)["durability"]["syncs"] == before:
        assert time.monotonic() < deadline, "no background flush after a put"
        time.sleep(0.02)


def test_a_growing_log_is_folded_into_a_new_snapshot(quiver, workdir):
    config = write_config(workdir, "log.json", {"index_log_bytes": "64KiB"})
    server = quiver(args=["--config", str(config)])
    client = server.client()
    for i in range(400):
        put(client, f"g/k{i}", table_for(str(i)))
    server.wait_for_log("as its log grew past index_log_bytes", timeout=30)
    server.kill()
    server.start()
    r = recovery(server.client())
    assert r["source"] == "journal"
    assert r["snapshot_rows"] > 0 and r["snapshot_rows"] + r["log_records"] >= 400, r
    assert len(entry_map(server.client())) == 400


def test_counters_survive_a_restart(server):
    client = server.client()
    for i in range(3):
        put(client, f"c/k{i}", table_for(str(i)))
    get(client, "c/k0")
    with pytest.raises(KeyError):
        get(client, "c/missing")
    before = stats(client)
    assert (before["puts"], before["gets"], before["hits"], before["misses"]) == (3, 2, 1, 1)
    server.restart()
    client = server.client()
    after = stats(client)
    for field in ("puts", "gets", "hits", "misses"):
        assert after[field] == before[field], field
    get(client, "c/k1")
    assert stats(client)["hits"] == before["hits"] + 1


@pytest.mark.parametrize("args,needle", [
    (["--durability", "always"], "always"),
    (["--sync-interval-ms", "0"], "sync-interval-ms"),
])
def test_bad_durability_settings_are_refused(quiver, args, needle):
    server = quiver(args=args, start=False)
    with pytest.raises(AssertionError) as e:
        server.start()
    assert needle in str(e.value)


def test_bad_durability_in_the_config_file_is_refused(quiver, workdir):
    config = write_config(workdir, "bad.json", {"durability": "sometimes"})
    server = quiver(args=["--config", str(config)], start=False)
    with pytest.raises(AssertionError) as e:
        server.start()
    assert 'durability must be "process" or "fsync", not "sometimes"' in str(e.value)
