"""Quiver on an S3 store, against real servers: quiver nodes, redis-server, and s3proxy (an
S3-compatible server enforcing SSE-C; tests/s3proxy.py). boto3 looks into the bucket directly.

Covered: a fill on one node is a hit streamed from S3 on another, then from its disk tier;
a put killed mid-upload leaves nothing visible; SSE-C (no key / a wrong key is refused);
SSE-C key rotation; S3 unreachable; local AES-256-GCM at rest (a damaged disk-tier copy is
dropped and refetched; a damaged entry of an embedded node is quarantined, never served).
"""

import hashlib
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest

from management_util import lite_args
from management_util import lite_db  # noqa: F401  (fixture)
from quiver_util import descriptor, get_table, put, write_config
from query_util import run_query, stats, wait_for
from s3_util import (get_object, list_objects, multipart_uploads, new_sse_key, refused,
                     write_key_file)
from s3proxy import S3Proxy, s3proxy_jar

AGG = "SELECT grp, count(*) AS n, sum(id) AS s FROM events GROUP BY grp ORDER BY grp"


def table(n, seed=0):
    rng = np.random.default_rng(seed)
    return pa.table({"i": np.arange(n, dtype=np.int64), "f": rng.standard_normal(n)})


def key_id(key):
    return hashlib.sha256(key).hexdigest()[:16]


def objects(cluster, folder):
    """{key: size} of the cluster's objects under PREFIX/folder/."""
    return list_objects(cluster.s3, cluster.bucket, f"{cluster.store_prefix}/{folder}/")


def manifests(cluster):
    """The manifests in the bucket, read with the cluster's key: {manifest key: dict}."""
    return {k: json.loads(get_object(cluster.s3, cluster.bucket, k, cluster.sse_key))
            for k in objects(cluster, "manifests")}


def disk_tier(client):
    return stats(client)["disk_tier"]


def entry_missing(client, key):
    with pytest.raises(pa.ArrowException, match="(?i)no object|not found|no such"):
        get_table(client, key)
    return True


# -- (a) a fill on one node, a hit on another: from S3, then from the disk tier --------------

def test_a_fill_on_one_node_is_streamed_from_s3_then_from_the_disk_tier(s3_cluster, lite_db):
    nodes = s3_cluster(2, args=lite_args(lite_db))
    a, b = nodes[0].client(), nodes[1].client()
    filled, meta = run_query(a, source="lite", sql=AGG)
    assert meta[0]["cache"] == "miss" and meta[0]["node"] == "n0"
    wait_for(lambda: stats(b)["entries"] == 1, what="the result to be published")
    assert disk_tier(a)["copies_made"] == 1, "the fill made no disk-tier copy on its node"
    (blob,) = objects(nodes, "data")
    assert len(manifests(nodes)) == 1

    before = disk_tier(b)
    assert (before["hits"], before["copies_made"], before["entries"]) == (0, 0, 0)
    got, m = run_query(b, source="lite", sql=AGG)
    assert m[0]["cache"] == "hit" and got.equals(filled)
    after = wait_for(lambda: (t := disk_tier(b))["copies_made"] == 1 and t,
                     what="B's disk-tier copy")
    assert after["hits"] == 0, "the first read on B was not streamed from S3"
    assert after["entries"] == 1 and len(nodes[1].data_files()) == 1

    # The second read on B comes from its disk tier: it works with the S3 object gone.
    nodes.s3.delete_object(Bucket=nodes.bucket, Key=blob)
    got, m = run_query(b, source="lite", sql=AGG)
    assert m[0]["cache"] == "hit" and got.equals(filled)
    assert disk_tier(b)["hits"] == 1
    assert stats(b)["queries"]["executions"] == 0 and stats(a)["queries"]["executions"] == 1


def test_without_a_disk_tier_every_read_goes_to_s3(s3_cluster):
    nodes = s3_cluster(2, args=["--no-disk-tier"])
    a, b = nodes[0].client(), nodes[1].client()
    t = table(50_000)
    put(a, "s/o", t)
    for _ in range(2):
        assert get_table(b, "s/o").equals(t)
    tier = disk_tier(b)
    assert tier is None or (tier["hits"], tier["copies_made"], tier["entries"]) == (0, 0, 0)
    assert nodes[0].data_files() == [] and nodes[1].data_files() == []
    # Proof that B reads S3 each time: with the object gone, B cannot serve it any more.
    (blob,) = objects(nodes, "data")
    nodes.s3.delete_object(Bucket=nodes.bucket, Key=blob)
    with pytest.raises(pa.ArrowException):
        get_table(b, "s/o")


# -- (b) a put killed mid-upload ------------------------------------------------------------

def test_a_put_killed_mid_upload_leaves_nothing_visible(s3_cluster, workdir):
    # Only B sweeps (grace 0): a killed A cannot be holding the sweep lease.
    no_sweep = write_config(workdir, "a.json", {"sweep_interval_s": 0})
    sweep = write_config(workdir, "b.json", {"garbage_grace_s": 0, "sweep_interval_s": 0.5})
    nodes = s3_cluster(2, start=False)
    nodes[0].args += ["--config", str(no_sweep)]
    nodes[1].args += ["--config", str(sweep)]
    nodes.start()
    a, b = nodes[0].client(), nodes[1].client()
    small = table(1000)
    put(b, "keep/me", small)
    published = (set(objects(nodes, "data")), set(objects(nodes, "manifests")))

    big = table(1 << 20)  # 16 MiB per copy: two copies stream > 20 MiB, a multipart upload
    writer, _ = a.do_put(descriptor("big/killed"), big.schema)
    for batch in big.to_batches(max_chunksize=1 << 16):
        writer.write_batch(batch)
    for batch in big.to_batches(max_chunksize=1 << 16):
        writer.write_batch(batch)
    # Arrow's S3 output stream starts a multipart upload once 10 MiB are buffered: wait for
    # it (s3proxy lists uploads in progress), then kill the node before the stream ends.
    wait_for(lambda: multipart_uploads(nodes.s3, nodes.bucket), 30, "a multipart upload")
    nodes[0].kill()
    try:
        writer.close()
    except Exception:
        pass

    assert (set(objects(nodes, "data")), set(objects(nodes, "manifests"))) == published
    assert stats(b)["entries"] == 1
    assert entry_missing(b, "big/killed")
    # A sweep on the survivor (grace 0) after the kill: it removes a planted unreferenced
    # blob (a sweep logs only when it removes something), and keeps what is published.
    planted = f"{nodes.store_prefix}/data/ab/n7-ab{'0' * 30}.arrows"
    nodes.s3.put_object(Bucket=nodes.bucket, Key=planted, Body=b"garbage")
    nodes[1].wait_for_log("removed 0 manifests, 1 data blobs", 20)
    assert (set(objects(nodes, "data")), set(objects(nodes, "manifests"))) == published
    assert get_table(b, "keep/me").equals(small)
    # The dead node's upload stays incomplete and invisible: removing it is the bucket's
    # lifecycle rule's job (AbortIncompleteMultipartUpload), not Quiver's.
    uploads = multipart_uploads(nodes.s3, nodes.bucket)
    print(f"incomplete multipart uploads reported by s3proxy after the kill: {uploads}")
    assert all(u["Key"].startswith(f"{nodes.store_prefix}/data/") for u in uploads)


# -- (c) SSE-C ------------------------------------------------------------------------------

def test_objects_are_encrypted_with_the_customer_key(s3_cluster):
    nodes = s3_cluster(2)
    t = table(20_000)
    put(nodes[0].client(), "s/o", t)
    found = {**objects(nodes, "data"), **objects(nodes, "manifests")}
    assert len(found) == 2
    wrong = new_sse_key()
    for key in found:
        assert refused(nodes.s3, nodes.bucket, key) is not None, f"{key} readable without key"
        assert refused(nodes.s3, nodes.bucket, key, wrong) is not None, \
            f"{key} readable with a wrong key"
        assert refused(nodes.s3, nodes.bucket, key, nodes.sse_key) is None
    (blob,) = objects(nodes, "data")
    data = get_object(nodes.s3, nodes.bucket, blob, nodes.sse_key)
    assert pa.ipc.open_stream(data).read_all().equals(t)
    (manifest,) = manifests(nodes).values()
    assert manifest["key_id"] == key_id(nodes.sse_key)


# -- (d) SSE-C key rotation -----------------------------------------------------------------

def test_sse_c_key_rotation(s3_cluster, workdir):
    k1, k2 = new_sse_key(), new_sse_key()
    # No disk tier: every read below goes to S3 with the key the entry names.
    nodes = s3_cluster(2, args=["--no-disk-tier"], sse_key=k1)
    old = table(10_000, seed=1)
    put(nodes[0].client(), "s/old", old)
    old_keys = set(objects(nodes, "data")) | set(objects(nodes, "manifests"))

    k1_file = write_key_file(workdir / "k1.key", k1)
    config = write_config(workdir, "rotated.json", {"s3": {"sse_c_old_key_files": [str(k1_file)]}})
    for node in nodes.nodes:
        node.stop()
        node.env["QUIVER_SSE_C_KEY"] = k2.hex()
        node.args = [*node.args, "--config", str(config)]
        node.start()
    nodes.sse_key = k2
    a, b = nodes[0].client(), nodes[1].client()
    assert get_table(b, "s/old").equals(old) and get_table(a, "s/old").equals(old)
    new = table(10_000, seed=2)
    put(b, "s/new", new)
    assert get_table(a, "s/new").equals(new)

    new_keys = (set(objects(nodes, "data")) | set(objects(nodes, "manifests"))) - old_keys
    assert len(new_keys) == 2
    for key in new_keys:
        assert refused(nodes.s3, nodes.bucket, key, k2) is None
        assert refused(nodes.s3, nodes.bucket, key, k1) is not None
    for key in old_keys:
        assert refused(nodes.s3, nodes.bucket, key, k1) is None
        assert refused(nodes.s3, nodes.bucket, key, k2) is not None
    by_key = {m["key"]: m for m in
              (json.loads(get_object(nodes.s3, nodes.bucket, k, k2 if k in new_keys else k1))
               for k in old_keys | new_keys if "/manifests/" in k)}
    assert by_key["s/old"]["key_id"] == key_id(k1)
    assert by_key["s/new"]["key_id"] == key_id(k2)


# -- (e) S3 unreachable ---------------------------------------------------------------------

@pytest.mark.skipif(s3proxy_jar() is None, reason="s3proxy is not available")
def test_s3_unreachable(s3_cluster, workdir):
    proxy = S3Proxy(work_dir=workdir / "private-s3proxy").start()
    try:
        config = write_config(workdir, "s3.json", {"s3": {"connect_timeout_s": 1,
                                                          "request_timeout_s": 3,
                                                          "max_retries": 1}})
        nodes = s3_cluster(2, args=["--config", str(config)], proxy=proxy)
        a, b = nodes[0].client(), nodes[1].client()
        t = table(10_000)
        put(a, "s/a", t)
        assert get_table(b, "s/a").equals(t)  # now in both disk tiers
        wait_for(lambda: disk_tier(b)["copies_made"] == 1, what="B's disk-tier copy")
        entries = stats(a)["entries"]
        proxy.stop()

        with pytest.raises(flight.FlightUnavailableError) as err:
            put(a, "s/b", table(100))
        message = str(err.value)
        assert f"bucket '{nodes.bucket}'" in message and "AWS Error" in message, message
        assert stats(a)["entries"] == entries == stats(b)["entries"]
        assert entry_missing(b, "s/b")
        for client in (a, b):
            assert get_table(client, "s/a").equals(t)
    finally:
        proxy.stop()


# -- (f) local AES-256-GCM at rest ----------------------------------------------------------

CHUNK = 64 << 10


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


def copy_of(node, blob):
    """The local disk-tier copy of the S3 object `blob` (.../data/xx/name.arrows)."""
    path = node.data_dir / "data" / blob.split("/data/", 1)[1]
    assert path.is_file(), path
    return path


def test_a_damaged_disk_tier_copy_is_dropped_and_refetched(s3_cluster):
    enc = {"QUIVER_ENCRYPTION_KEY": os.urandom(32).hex()}
    nodes = s3_cluster(1, env=enc)
    node, c = nodes[0], nodes[0].client()
    tables = {f"s/{i}": table(40_000, seed=i) for i in range(5)}  # ~640 KiB: 10 chunks each
    blobs = {}
    for key, t in tables.items():
        before = set(objects(nodes, "data"))
        put(c, key, t)
        (blobs[key],) = set(objects(nodes, "data")) - before
    copies = {k: copy_of(node, b) for k, b in blobs.items()}
    assert len({p.stat().st_size for p in copies.values()}) == 1

    def read_back(key, damaged, may_fail=False):
        """Reads of `key`: never wrong data; the damage counted once; then right data."""
        try:
            got = get_table(c, key)
            assert got.equals(tables[key]), f"{key}: damaged copy served"
            print(f"{key}: the read that met the damage was served from S3")
        except pa.ArrowException as e:
            assert may_fail, f"{key}: damage found at open must be served from S3"
            print(f"{key}: the read that met the damage failed: {e}")
        assert disk_tier(c)["damaged"] == damaged
        assert get_table(c, key).equals(tables[key])
        assert disk_tier(c)["damaged"] == damaged

    # 1. A byte flipped mid-stream: met while streaming (the request may fail), dropped.
    flip(copies["s/0"], 4 * CHUNK + 100)
    read_back("s/0", 1, may_fail=True)
    # 2. A byte flipped in the header: found at open, served from S3.
    flip(copies["s/1"], 10)
    read_back("s/1", 2)
    # 3. Truncated: the last chunk is checked at open.
    with open(copies["s/2"], "r+b") as f:
        f.truncate(copies["s/2"].stat().st_size // 2)
    read_back("s/2", 3)
    # 4. Two copies' files swapped: each is bound to its name.
    p3, p4 = copies["s/3"].read_bytes(), copies["s/4"].read_bytes()
    copies["s/3"].write_bytes(p4)
    copies["s/4"].write_bytes(p3)
    read_back("s/3", 4)
    read_back("s/4", 5)
    # Refetched copies are whole again: a second round is all disk-tier hits, no new damage.
    hits = disk_tier(c)["hits"]
    for key, t in tables.items():
        assert get_table(c, key).equals(t)
    assert disk_tier(c)["damaged"] == 5 and disk_tier(c)["hits"] >= hits + 4


def test_a_damaged_entry_of_an_embedded_node_is_quarantined(quiver):
    srv = quiver()
    srv.stop()
    srv.env = {"QUIVER_ENCRYPTION_KEY": os.urandom(32).hex()}
    srv.start()
    c = srv.client()
    tables = {f"s/{i}": table(40_000, seed=i) for i in range(3)}
    files = {}
    for key, t in tables.items():
        before = set(srv.data_files())
        put(c, key, t)
        (files[key],) = set(srv.data_files()) - before
    assert stats(c)["entries"] == 3

    damage = {"s/0": lambda p: flip(p, 4 * CHUNK + 100),            # mid-stream
              "s/1": lambda p: flip(p, 10),                          # header
              "s/2": lambda p: os.truncate(p, p.stat().st_size // 2)}  # truncated
    for n, (key, harm) in enumerate(damage.items(), start=1):
        harm(files[key])
        with pytest.raises(pa.ArrowException):
            get_table(c, key)
        assert stats(c)["damaged"] == n
        assert entry_missing(c, key), f"{key}: damaged entry still served"
        assert not files[key].exists()
        quarantined = [p.name for p in (srv.data_dir / "quarantine").rglob("*")]
        assert files[key].name in quarantined, quarantined
    assert stats(c)["entries"] == 0 and stats(c)["damaged"] == 3
