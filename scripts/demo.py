"""Quiver demo: put a table, get it back, update it, restart the server, get it again.

Run through scripts/demo.sh, which sets up and builds first. Prints each step with its
timing. Uses only pyarrow.flight on the client side.
"""

import argparse
import json
import os
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

    def __init__(self, binary, data_dir, extra_args=()):
        self.binary, self.data_dir, self.extra_args = binary, data_dir, list(extra_args)
        self.proc = None
        self.location = None

    def start(self):
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", "grpc://127.0.0.1:0", "--data-dir", self.data_dir,
             *self.extra_args],
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


def demo_queries(client):
    """A query through the cache: one execution on SQLite, then hits from the store."""
    request = {"source": "demo",
               "sql": "SELECT country, event_type, count(*) AS events, "
                      "round(sum(amount), 2) AS revenue, avg(duration_ms) AS avg_ms "
                      "FROM events GROUP BY country, event_type ORDER BY country, event_type",
               "ttl_s": 300}
    print("query  " + request["sql"][:72] + "...")
    for attempt in range(4):
        t0 = time.perf_counter()
        reader = client.do_get(flight.Ticket(json.dumps(request).encode()))
        first = reader.read_chunk()
        meta = json.loads(first.app_metadata.to_pybytes())
        rows = first.data.num_rows + reader.read_all().num_rows
        ms = (time.perf_counter() - t0) * 1000
        detail = f"executed on SQLite" if meta["cache"] == "miss" else \
            f"from the store; the execution took {meta['exec_ms']} ms"
        print(f"  {meta['cache']:<4}  {rows} rows in {ms:7.1f} ms  ({detail})")
        if attempt == 0:
            time.sleep(0.2)  # the result commits just after its last batch is sent


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quiver", default="build/quiver", help="path to the quiver binary")
    ap.add_argument("--data-dir", help="data dir to use (default: a new temp dir)")
    ap.add_argument("--rows", type=int, default=2_000_000, help="rows in the demo table")
    ap.add_argument("--keep", action="store_true", help="keep the data dir afterwards")
    ap.add_argument("--demo-db", default="build/demo.db",
                    help="SQLite database for the query part (scripts/make_demo_db.py)")
    args = ap.parse_args()

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="quiver-demo-")
    extra = ["--source", f"demo=sqlite://{os.path.abspath(args.demo_db)}"] \
        if os.path.exists(args.demo_db) else []
    server = Server(args.quiver, data_dir, extra)
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

        if extra:
            demo_queries(client)
        else:
            print(f"(no {args.demo_db}: skipping the query part; scripts/setup.sh makes it)")

        stats = json.loads(next(iter(client.do_action(flight.Action("stats", b"")))).body
                           .to_pybytes())
        queries = stats.pop("queries")
        print("stats  " + ", ".join(f"{k}={v}" for k, v in stats.items()))
        queries.pop("executions_by_key")
        print("       queries: " + ", ".join(f"{k}={v}" for k, v in queries.items()))
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
