#!/usr/bin/env python3
"""S3 store benchmark: what keeping entries in S3 (`quiver serve --store s3://...`) costs on a
hit and on a put, which tier serves a hit, and how much memory a hit from S3 holds, each
against baselines measured in the same run.

One run starts an S3-compatible server (tests/s3proxy.py: s3proxy 4.1.0, HTTPS on loopback,
a transient in-memory backend, SSE-C enforced), a redis-server and Quiver processes from a
copy of the binary:

  1. hits: the same objects (IPC streams of bench_data tables: 64 KiB and 1 MiB in one batch,
     32 MiB in 1 MiB batches) served by Flight DoGet from
       s3        an S3 node with --no-disk-tier and no memory tier (every hit reads S3),
       disk      an S3 node with its node-local disk tier (after a warm-up read),
       memory    an S3 node with --no-disk-tier and --memory-size (after a warm-up read),
       embedded  a node on the local store (no S3): the reference,
       redis     a plain Redis GET of the same IPC bytes + pyarrow.ipc.open_stream().read_all(),
                 what a user would build instead;
     p50/p99 latency (blocks of requests, alternating between the systems) and MB/s and req/s
     of N client threads (own connection each; windows alternating). The stats action checks
     which tier served (disk_tier.hits, memory.hits).
  2. puts (the miss overhead): DoPut of the same tables until the PutResult into an S3 node
     (no disk tier; and one with its disk tier, which copies during the fill) vs. the embedded
     node, alternating.
  3. memory and requests: a 256 MiB table in 1 MiB batches is put through one S3 node; a fresh
     node (--no-disk-tier, --no-verify-on-startup) on the same bucket serves it: its peak RSS
     (VmHWM reset through /proc/PID/clear_refs before each hit, and VmRSS sampled every
     2 ms) against the bound of the read-ahead, (depth + 1) x 4 MiB plus the largest IPC
     message. That phase's s3proxy logs at debug level so that the S3 requests of each hit
     and put can be counted.

It prints a table, writes the raw results to bench/results/s3-bench-<time>.json (git-ignored)
and rewrites the section of docs/benchmarks.md between <!-- s3-bench:begin --> and
<!-- s3-bench:end --> (not with --quick or --no-docs). Every process it starts is stopped on
exit, errors included.

Run it with scripts/bench_s3.sh [ARGS] (sets up and builds first) or directly with
.venv/bin/python bench/s3_bench.py [ARGS]. The binary is build/quiver unless --quiver or the
QUIVER_BIN environment variable names another.
"""
from __future__ import annotations

import argparse
import gc
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import redis as redis_py

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared bench_* modules

import bench_env  # noqa: E402  (puts tests/ on sys.path)
from bench_data import Dataset, ipc_bytes, make_table  # noqa: E402
from bench_env import (KiB, MiB, Phase, fmt_size, log, parse_size,  # noqa: E402
                       percentile, status_kib, wait_for_idle_accounted)
from bench_run import add_output_args, run_harness  # noqa: E402
from bench_servers import CALL, PairedRuns, do_get, do_put  # noqa: E402
from bench_servers import snapshot_with_facts  # noqa: E402
import s3_report  # noqa: E402
from s3_report import SYSTEMS  # noqa: E402
from s3_processes import (Proxy, RedisTarget, RssSampler, redis_get,  # noqa: E402
                          s3_args, start_node, stream_through, tier_counters)
from s3proxy import S3Proxy, s3proxy_jar  # noqa: E402
from shared_cluster import Target, hammer, start_redis, stop_all  # noqa: E402

bench_env.LOG_NAME = "s3-bench"

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_DOCS = ROOT / "docs" / "benchmarks.md"
QUIVER_SYSTEMS = ("s3", "disk", "memory", "embedded")


# ---------------------------------------------------------------------------------------
# 1. Hits


def objects(args) -> list[Dataset]:
    out = []
    for i, size in enumerate(args.sizes):
        batch = min(size, MiB)
        label = (f"{fmt_size(size)}, one batch" if batch == size
                 else f"{fmt_size(size)}, {fmt_size(batch)} batches")
        out.append(Dataset(f"obj-{fmt_size(size).replace(' ', '')}", label,
                           make_table(size, batch, 11 + i)))
    return out


def hit_phase(args, work, binary, redis, res):
    raw, facts = res["raw"], res["facts"]
    data = objects(args)
    facts["objects"] = [{"name": d.name, "label": d.label, "nbytes": d.nbytes,
                         "ipc_bytes": d.ipc_bytes, "batches": d.batches, "rows": d.table.num_rows}
                        for d in data]
    log("phase 1: s3proxy and four nodes (S3; S3 + disk tier; S3 + memory tier; embedded)")
    proxy = Proxy(work / "s3proxy-hits").start()
    bucket = proxy.make_bucket()
    mem_size = max(256 * MiB, 8 * max(d.ipc_bytes for d in data) + MiB)
    facts["memory_size"] = mem_size
    nodes = {
        "s3": start_node("s3", binary, work, s3_args(proxy, bucket, "s3") + ["--no-disk-tier"]),
        "disk": start_node("disk", binary, work, s3_args(proxy, bucket, "disk")),
        "memory": start_node("memory", binary, work,
                             s3_args(proxy, bucket, "memory")
                             + ["--no-disk-tier", "--memory-size", str(mem_size)]),
        "embedded": start_node("embedded", binary, work),
    }
    rt = RedisTarget(redis)
    rconn = rt.connect()
    for d in data:
        for node in nodes.values():
            do_put(node.client, f"bench/{d.name}", d.table)
        rconn.set(f"bench/{d.name}", ipc_bytes(d.table))
    # Every system returns every object unchanged; this is also the warm-up read that puts
    # the objects in the disk and memory tiers.
    for d in data:
        for name, node in nodes.items():
            got = node.client.do_get(flight.Ticket(f"bench/{d.name}".encode()), CALL).read_all()
            if not got.equals(d.table):
                raise RuntimeError(f"{name} returned a different bench/{d.name}")
        if not pa.ipc.open_stream(rconn.get(f"bench/{d.name}")).read_all().equals(d.table):
            raise RuntimeError(f"Redis returned a different bench/{d.name}")

    targets = [Target(n, nodes[n].client, [nodes[n]], [proxy.proc.pid] if n != "embedded" else [])
               for n in QUIVER_SYSTEMS] + [rt]
    everything = Target("all", None, list(nodes.values()), [proxy.proc.pid, redis.proc.pid])
    paired = PairedRuns(targets, args.max_noise, args.retries)
    conns1 = {n: nodes[n].client for n in QUIVER_SYSTEMS}
    conns1["redis"] = rconn

    def getter(d):
        key, rows = f"bench/{d.name}", d.table.num_rows

        def fn(name, c):
            return redis_get(c, key, rows) if name == "redis" else do_get(c, key, rows)
        return fn

    counters0 = {n: tier_counters(nodes[n]) for n in QUIVER_SYSTEMS}
    raw["latency_blocks_ms"] = {n: {} for n in SYSTEMS}
    raw["latency_server_cpu_us"] = {n: {} for n in SYSTEMS}
    for d, nreq in zip(data, args.latency_requests):
        fn = getter(d)
        block = max(1, min(20, nreq // 10))
        wait_for_idle_accounted(args.wait_idle)
        with Phase(everything, f"latency {d.name}", facts):
            log(f"latency, {d.label}: {nreq} requests per system in blocks of {block}")
            for t in targets:
                for _ in range(max(2, block)):
                    fn(t.name, conns1[t.name])
            gc.disable()
            try:
                got = paired.run(f"latency {d.name}", -(-nreq // block),
                                 lambda t: [fn(t.name, conns1[t.name]) * 1000
                                            for _ in range(block)])
            finally:
                gc.enable()
            for name, samples in got.items():
                raw["latency_blocks_ms"][name][d.name] = [s.result for s in samples]
                sent = sum(len(s.result) for s in samples)
                raw["latency_server_cpu_us"][name][d.name] = (
                    sum(s.server_cpu for s in samples) / sent * 1e6)
            log("  p50 ms: " + ", ".join(
                f"{n} {percentile([x for b in raw['latency_blocks_ms'][n][d.name] for x in b], 50):.2f}"
                for n in SYSTEMS))

    conns = {n: [flight.connect(nodes[n].location) for _ in range(args.threads)]
             for n in QUIVER_SYSTEMS}
    conns["redis"] = [rt.connect() for _ in range(args.threads)]
    raw["throughput"] = {n: {} for n in SYSTEMS}
    for d in data:
        fn = getter(d)
        wait_for_idle_accounted(args.wait_idle)
        with Phase(everything, f"throughput {d.name}", facts):
            log(f"throughput, {d.label}: {args.reps} windows of {args.window:g} s per system, "
                f"{args.threads} threads")
            for t in targets:  # warm-up: every connection once
                for c in conns[t.name]:
                    fn(t.name, c)
            got = paired.run(f"throughput {d.name}", args.reps,
                             lambda t: hammer(conns[t.name], lambda c: fn(t.name, c),
                                              args.window))
            for name, samples in got.items():
                raw["throughput"][name][d.name] = [
                    {**s.result, "server_cpu_s": s.server_cpu, "client_cpu_s": s.client_cpu,
                     "other": s.other} for s in samples]
    for cs in conns.values():
        for c in cs:
            c.close()
    counters1 = {n: tier_counters(nodes[n]) for n in QUIVER_SYSTEMS}
    raw["tier_counters"] = {"before": counters0, "after": counters1}
    facts["tier_check"] = check_tiers(counters0, counters1)
    facts["discarded_for_noise"] = paired.discarded
    rconn.close()
    for node in nodes.values():
        node.stop()
    proxy.stop()


def check_tiers(before: dict, after: dict) -> dict:
    """Which tier served the timed hits, from the stats deltas; ok if as intended."""
    out = {}
    for n in QUIVER_SYSTEMS:
        d = {k: after[n][k] - before[n][k] for k in after[n] if k != "disk_tier"}
        if n == "s3":
            ok = not after[n]["disk_tier"] and d["memory_hits"] == 0 and d["misses"] == 0
        elif n == "disk":
            ok = d["disk_hits"] == d["hits"] and d["memory_hits"] == 0 and d["misses"] == 0
        elif n == "memory":
            ok = d["memory_hits"] == d["hits"] and not after[n]["disk_tier"] and d["misses"] == 0
        else:
            ok = d["memory_hits"] == 0 and d["misses"] == 0
        out[n] = {**d, "ok": ok}
        if not ok:
            log(f"WARNING: the {n} node's hits were not all served as intended: {d}")
    return out


# ---------------------------------------------------------------------------------------
# 2. Puts (miss overhead)


def put_phase(args, work, binary, res):
    raw, facts = res["raw"], res["facts"]
    data = objects(args)
    log("phase 2: puts into S3 nodes (without and with a disk tier) vs. an embedded node")
    proxy = Proxy(work / "s3proxy-puts").start()
    bucket = proxy.make_bucket()
    keep = ["--keep-versions", "1"]
    nodes = {"s3": start_node("put-s3", binary, work,
                              s3_args(proxy, bucket, "s3") + ["--no-disk-tier", *keep]),
             "disk": start_node("put-disk", binary, work, s3_args(proxy, bucket, "disk") + keep),
             "embedded": start_node("put-embedded", binary, work, keep)}
    targets = [Target(n, nodes[n].client, [nodes[n]], [proxy.proc.pid] if n != "embedded" else [])
               for n in nodes]
    group = Target("puts", None, list(nodes.values()), [proxy.proc.pid])
    paired = PairedRuns(targets, args.max_noise, args.retries)
    raw["put_s"] = {n: {} for n in nodes}
    for d, reps in zip(data, args.put_reps):
        for t in targets:  # warm-up (and the first version of the key)
            do_put(t.client, f"bench/{d.name}", d.table)
        wait_for_idle_accounted(args.wait_idle)
        with Phase(group, f"put {d.name}", facts):
            log(f"puts, {d.label}: {reps} per node")
            # A miss stores a new key: each put has a key of its own (a put over an existing
            # key also trims its oldest version, which costs S3 deletes on top).
            fresh = itertools.count()
            got = paired.run(f"put {d.name}", reps,
                             lambda t: do_put(t.client, f"bench/{d.name}-{next(fresh)}",
                                              d.table)[0])
            for name, samples in got.items():
                raw["put_s"][name][d.name] = [s.result for s in samples]
                raw.setdefault("put_server_cpu_s", {}).setdefault(name, {})[d.name] = [
                    s.server_cpu for s in samples]
    facts["put_discarded_for_noise"] = paired.discarded
    for node in nodes.values():
        node.stop()
    proxy.stop()


# ---------------------------------------------------------------------------------------
# 3. Peak RSS of a hit from S3, and the S3 requests of hits and puts


def memory_phase(args, work, binary, res):
    raw, facts = res["raw"], res["facts"]
    big = Dataset("big", f"{fmt_size(args.rss_size)}, 1 MiB batches",
                  make_table(args.rss_size, MiB, 99))
    batches = big.table.to_batches()
    largest = max(len(ipc_bytes(pa.Table.from_batches([b]))) for b in batches[:3])
    facts["rss_object"] = {"label": big.label, "nbytes": big.nbytes, "ipc_bytes": big.ipc_bytes,
                           "batches": big.batches, "largest_message_approx": largest}
    log(f"phase 3: peak RSS of a {big.label} hit from S3; S3 requests per hit and put")
    proxy = Proxy(work / "s3proxy-rss", debug=True).start()
    bucket = proxy.make_bucket()
    args_s3 = s3_args(proxy, bucket, "rss")
    writer = start_node("rss-writer", binary, work, args_s3 + ["--no-disk-tier"])
    data = objects(args)
    requests = {"put": {}, "get": {}}
    for d in [*data, big]:
        off = proxy.log_size()
        do_put(writer.client, f"bench/{d.name}", d.table)
        requests["put"][d.name] = proxy.requests_since(off)
    writer.stop()
    # A fresh process: its RSS does not carry the put's buffers. It finds the entries in S3.
    reader = start_node("rss-reader", binary, work,
                        args_s3 + ["--no-disk-tier", "--no-verify-on-startup"])
    pid = reader.proc.pid
    # The first hits of the smaller objects warm the node up (the S3 client's connections,
    # threads, ...); the big object's first hit is then the first one of its size in this
    # process (later hits reuse memory the allocator kept: they show the steady state).
    for d in data:
        off = proxy.log_size()
        t0 = time.perf_counter()
        rows, _ = stream_through(reader.client, f"bench/{d.name}")
        wall = time.perf_counter() - t0
        if rows != d.table.num_rows:
            raise RuntimeError(f"rss-reader: bench/{d.name} has {rows} rows")
        requests["get"][d.name] = {**proxy.requests_since(off), "wall_s": wall}
    samples = []
    wait_for_idle_accounted(args.wait_idle)
    for rep in range(args.rss_reps):
        off = proxy.log_size()
        rss0 = status_kib(pid, "VmRSS")
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        hwm0 = status_kib(pid, "VmHWM")
        with RssSampler(pid) as sampler:
            rows, wall = stream_through(reader.client, "bench/big")
        hwm1 = status_kib(pid, "VmHWM")
        if rows != big.table.num_rows:
            raise RuntimeError(f"rss-reader: bench/big has {rows} rows")
        if rep == 0:
            requests["get"]["big"] = {**proxy.requests_since(off), "wall_s": wall}
        samples.append({"rss_before_kib": rss0, "hwm_reset_kib": hwm0, "hwm_after_kib": hwm1,
                        "sampled_peak_kib": sampler.peak_kib,
                        "rss_after_kib": status_kib(pid, "VmRSS"), "seconds": wall})
        log(f"  hit {rep + 1}: RSS {rss0 / 1024:.1f} MiB before, peak {hwm1 / 1024:.1f} MiB "
            f"(+{(hwm1 - rss0) / 1024:.1f} MiB), {wall:.2f} s")
    raw["rss"] = samples
    raw["s3_requests"] = requests
    st = reader.stats()
    facts["rss_reader_stats"] = {"hits": st["hits"], "misses": st["misses"],
                                 "memory_hits": st["memory"]["hits"],
                                 "disk_tier": st.get("disk_tier")}
    reader.stop()
    proxy.stop()


# ---------------------------------------------------------------------------------------


def run(args, work: Path) -> dict:
    res: dict = {"raw": {}, "facts": {}}
    facts = res["facts"]
    binary = snapshot_with_facts(args.quiver, work, facts)
    facts["readahead"] = {"bytes": 4 * MiB, "depth": 2}  # the s3 defaults (config.h)
    # Test credentials for s3proxy and a fresh SSE-C key, inherited by the nodes.
    os.environ.update(AWS_ACCESS_KEY_ID=S3Proxy.access_key,
                      AWS_SECRET_ACCESS_KEY=S3Proxy.secret_key,
                      QUIVER_SSE_C_KEY=os.urandom(32).hex())
    try:
        redis = start_redis(work)
        facts["software"] = {
            "quiver": subprocess.run([str(binary), "--version"], capture_output=True,
                                     text=True, timeout=30).stdout.strip() or "unknown",
            "redis": redis.client().info("server")["redis_version"],
            "redis_py": redis_py.__version__,
            "s3proxy": "4.1.0 (transient backend, HTTPS on loopback, SSE-C)",
            "java": (subprocess.run(["java", "-version"], capture_output=True, text=True)
                     .stderr.splitlines() or ["unknown"])[0]}
        hit_phase(args, work, binary, redis, res)
        put_phase(args, work, binary, res)
        memory_phase(args, work, binary, res)
    finally:
        stop_all()
    return res


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/s3_bench.py",
        description="Benchmark Quiver's S3 store (s3proxy on loopback): hit latency and "
                    "throughput served from S3, from the node-local disk tier and from the "
                    "memory tier vs. the embedded local store and a plain Redis GET of the "
                    "same IPC bytes; put (miss) time into S3 vs. the local store; peak RSS "
                    "of a hit streamed from S3. Prints a table and writes the figures with "
                    "machine details into docs/benchmarks.md.",
        epilog="Needs java and the s3proxy jar (scripts/setup.sh fetches it) and redis-server. "
               "The full run takes about 5 minutes on 2 cores; --quick (under 2 minutes) "
               "leaves the docs alone. The binary: --quiver, else $QUIVER_BIN, else "
               "build/quiver.")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: fewer requests, 2 windows of 0.5 s, a 64 MiB RSS "
                        "object; does not write the docs")
    p.add_argument("--sizes", type=parse_size, nargs="+", default=[64 * KiB, MiB, 32 * MiB],
                   help="object sizes (tables of bench_data.make_table; batches of at most "
                        "1 MiB) [default: 64KiB 1MiB 32MiB]")
    p.add_argument("--latency-requests", type=int, nargs="+", default=None,
                   help="timed requests per system for each size [default: 200 100 20, "
                        "--quick: 40 20 6]")
    p.add_argument("--put-reps", type=int, nargs="+", default=None,
                   help="timed puts per node for each size [default: 20 10 5, --quick: 5 3 2]")
    p.add_argument("--reps", type=int, default=None,
                   help="throughput windows per system and size [default: 3, --quick: 2]")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="length of one throughput window [default: 2, --quick: 0.5]")
    p.add_argument("--threads", type=int, default=4,
                   help="client threads of the throughput measurement [default: %(default)s]")
    p.add_argument("--rss-size", type=parse_size, default=None,
                   help="size of the object whose hit's peak RSS is measured [default: 256MiB, "
                        "--quick: 64MiB]")
    p.add_argument("--rss-reps", type=int, default=3, help="hits of it [default: %(default)s]")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="before starting and before each phase, wait up to SECONDS for the "
                        "machine to be idle (under 10%% busy over 3 s) [default: 0]")
    p.add_argument("--max-noise", type=float, default=0.25, metavar="FRACTION",
                   help="run a throughput window or put (all systems' turns) again if other "
                        "work used more than FRACTION of the machine meanwhile "
                        "[default: 0.25]")
    p.add_argument("--retries", type=int, default=None,
                   help="most repetitions discarded per phase for noise [default: their number]")
    p.add_argument("--quiver",
                   default=os.environ.get("QUIVER_BIN") or str(ROOT / "build" / "quiver"),
                   help="the server binary, copied into the work dir before use [default: "
                        "$QUIVER_BIN or build/quiver]")
    add_output_args(p, "s3-bench", "data dirs, node, redis and s3proxy logs", RESULTS_DIR)
    args = p.parse_args(argv)

    def pick(value, full, quick):
        return value if value is not None else (quick if args.quick else full)

    def per_size(value, full, quick, name):
        v = list(pick(value, full, quick))
        v = (v + [v[-1]] * len(args.sizes))[:len(args.sizes)]
        if min(v) < 1:
            p.error(f"{name} must be at least 1")
        return v

    args.latency_requests = per_size(args.latency_requests, [200, 100, 20], [40, 20, 6],
                                     "--latency-requests")
    args.put_reps = per_size(args.put_reps, [20, 10, 5], [5, 3, 2], "--put-reps")
    args.reps = pick(args.reps, 3, 2)
    args.window = pick(args.window, 2.0, 0.5)
    args.rss_size = pick(args.rss_size, 256 * MiB, 64 * MiB)
    if args.no_docs:
        args.docs = None
    elif args.docs is None and not args.quick:
        args.docs = str(DEFAULT_DOCS)
    if min(args.reps, args.threads, args.rss_reps) < 1:
        p.error("--reps, --threads and --rss-reps must be at least 1")
    if args.window <= 0:
        p.error("--window must be positive")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not args.report and s3proxy_jar() is None:
        raise SystemExit("s3proxy is not available (java, or the jar in .tools/s3proxy/); "
                         "run scripts/setup.sh or set QUIVER_S3PROXY_JAR")
    return run_harness(s3_report, "s3-bench", "bench/s3_bench.py", argv, args, run, RESULTS_DIR,
                       kept="node logs *.log, s3proxy-*/, redis/")


if __name__ == "__main__":
    sys.exit(main())
