"""Quiver demo: put a table, get it back, update it, restart the server, get it again.

Run through scripts/demo.sh, which sets up and builds first. Prints each step with its
timing. Uses only pyarrow.flight on the client side.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight


class Server:
    """A `quiver serve` child process on a free port."""

    def __init__(self, binary, data_dir):
        self.binary, self.data_dir = binary, data_dir
        self.proc = None
        self.location = None

    def start(self):
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", "grpc://127.0.0.1:0", "--data-dir", self.data_dir],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("quiver listening on "):
            sys.exit(f"quiver did not start: {line!r}\n{self.proc.stderr.read()}")
        self.location = line.split()[-1]
        return time.perf_counter() - t0

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        return self.proc.stderr.read()


def make_table(rows, seed):
    rng = np.random.default_rng(seed)
    return pa.table({
        "id": pa.array(np.arange(rows, dtype=np.int64)),
        "value": pa.array(rng.normal(size=rows)),
        "city": pa.array(rng.choice(["Oslo", "Lima", "Pune", "Kyiv"], rows)).dictionary_encode(),
        "at": pa.array(np.arange(rows, dtype="int64") * 1_000_000, pa.timestamp("us", tz="UTC")),
    })


def put(client, key, table, if_version=None):
    writer, meta = client.do_put(flight.FlightDescriptor.for_path(*key.split("/")), table.schema)
    if if_version is not None:
        writer.write_metadata(json.dumps({"if_version": if_version}).encode())
    writer.write_table(table, max_chunksize=64 * 1024)
    writer.done_writing()
    ref = json.loads(meta.read().to_pybytes())
    writer.close()
    return ref


def get(client, ticket):
    reader = client.do_get(flight.Ticket(ticket.encode()))
    first = reader.read_chunk()
    ref = json.loads(first.app_metadata.to_pybytes()) if first.app_metadata else {}
    rest = reader.read_all()
    return pa.Table.from_batches([first.data] + rest.to_batches()), ref


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter() - t0) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quiver", default="build/quiver", help="path to the quiver binary")
    ap.add_argument("--data-dir", help="data dir to use (default: a new temp dir)")
    ap.add_argument("--rows", type=int, default=2_000_000, help="rows in the demo table")
    ap.add_argument("--keep", action="store_true", help="keep the data dir afterwards")
    args = ap.parse_args()

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="quiver-demo-")
    server = Server(args.quiver, data_dir)
    try:
        started = server.start()
        print(f"started quiver at {server.location} on {data_dir} ({started * 1000:.0f} ms)")
        client = flight.connect(server.location)
        key = "demo/events"

        v1 = make_table(args.rows, seed=1)
        mb = v1.nbytes / 2**20
        ref, ms = timed(put, client, key, v1)
        print(f"put    {key}: {v1.num_rows:,} rows, {mb:.0f} MiB -> version {ref['version']}"
              f"  ({ms:.0f} ms, {mb / ms * 1000:.0f} MiB/s)")

        (got, gref), ms = timed(get, client, key)
        assert got.equals(v1), "the table read back differs from the one put"
        print(f"get    {key}: version {gref['version']}, identical  ({ms:.0f} ms)")

        v2 = make_table(args.rows // 2, seed=2)
        ref2, ms = timed(put, client, key, v2, if_version=ref["version"])
        print(f"update {key} if still version {ref['version']} -> version {ref2['version']}  "
              f"({ms:.0f} ms)")
        try:
            put(client, key, v2, if_version=ref["version"])
            print("  !! a stale compare-and-set was accepted")
            return 1
        except pa.ArrowException as e:
            reason = str(e).splitlines()[0]
            reason = reason[reason.find("version conflict"):].split(". gRPC")[0]
            print(f"update {key} if still version {ref['version']} again -> refused: {reason}")

        (old, _), ms = timed(get, client, f"{key}@{ref['version']}")
        assert old.equals(v1)
        print(f"get    {key}@{ref['version']}: the old version is still kept  ({ms:.0f} ms)")

        client.close()
        log = server.stop()
        restarted = server.start()
        recovered = [l for l in log.splitlines() if "recovered" in l]
        print(f"restarted quiver at {server.location} ({restarted * 1000:.0f} ms)")
        client = flight.connect(server.location)
        (got2, gref2), ms = timed(get, client, key)
        assert got2.equals(v2), "version 2 did not survive the restart"
        print(f"get    {key}: version {gref2['version']} after restart, identical  ({ms:.0f} ms)")

        cond = client.do_get(flight.Ticket(json.dumps(
            {"key": key, "if_none_match": gref2["version"]}).encode())).read_chunk()
        status = json.loads(cond.app_metadata.to_pybytes())["status"]
        print(f"get    {key} if-none-match {gref2['version']}: {status}")

        stats = json.loads(next(iter(client.do_action(flight.Action("stats", b"")))).body
                           .to_pybytes())
        print("stats  " + ", ".join(f"{k}={v}" for k, v in stats.items()))
        client.close()
        server.stop()
        return 0
    finally:
        if server.proc and server.proc.poll() is None:
            server.proc.kill()
        if not args.keep and not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
