#!/usr/bin/env python3
"""Shared-mode benchmark: what sharing one cache between several `quiver serve` nodes costs
and what it buys, each against a baseline measured in the same run.

One run starts a redis-server (the shared index), a private PostgreSQL cluster (the query
source; its pg_sleep makes slow queries) and Quiver processes from a copy of the binary:

  1. hits: an embedded server (no --index) and node 0 of a 2-node cluster, side by side:
     DoGet p50/p99 of a 1 KiB and a 64 KiB single-batch object and of a small cached query
     result, and the requests/s of 8 client threads -- the cost of the Redis round trips
     (also: Redis commands per request, server-side CPU per request);
  2. stampede: a 3-node cluster; N clients per node ask for the same slow uncached query at
     once: executions (nodes' stats and the database's own count, must be 1), remote_joins
     (nodes that streamed it live), and the slowest client vs. a lone miss on a fresh key;
  3. cross-node first batch: node A's client starts a slow streaming query; once its first
     batch arrived, a client of node B asks for it: B's first batch relative to A's fill
     end, with live_join true (the 3-node cluster) and false (a 2-node cluster).

Figures are medians of repetitions with their spread; requests alternate between the
systems compared. It prints a table, writes the raw results to
bench/results/shared-bench-<time>.json (git-ignored) and rewrites the section of
docs/benchmarks.md between <!-- shared-bench:begin --> and <!-- shared-bench:end --> (not
with --quick or --no-docs). Every process it starts is stopped on exit, errors included.

Run it with scripts/bench_shared.sh [ARGS] (sets up and builds first) or directly with
.venv/bin/python bench/shared_bench.py [ARGS]. The binary is build/quiver unless --quiver
or the QUIVER_BIN environment variable names another.
"""
from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.flight as flight

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared bench_* modules

import bench_env  # noqa: E402
from bench_data import Dataset, make_table  # noqa: E402
from bench_env import KiB, Phase, fmt_size, log, wait_for_idle_accounted  # noqa: E402
from bench_run import add_output_args, run_harness  # noqa: E402
from bench_servers import CALL, PairedRuns, do_get, do_put, snapshot_with_facts  # noqa: E402
from query_reads import quiver_read  # noqa: E402
from shared_cluster import (HIT_SQL, Cluster, Node, Postgres, Target,  # noqa: E402
                            cross_node, fresh_tag, hammer, redis_calls, redis_trace,
                            request, slow_sql, stampede, start_redis, stop_all, ticket,
                            write_config)
import shared_report  # noqa: E402

bench_env.LOG_NAME = "shared-bench"

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_DOCS = ROOT / "docs" / "benchmarks.md"
BLOCK = 50  # latency requests per turn, alternating servers


# ---------------------------------------------------------------------------------------
# 1. Hits: embedded vs. one node of a 2-node cluster


def hit_phase(args, work, binary, redis, config, res):
    raw, facts = res["raw"], res["facts"]
    objects = [Dataset(f"obj-{fmt_size(s).replace(' ', '')}", f"Object get, {fmt_size(s)}",
                       make_table(s, s, 7 + i)) for i, s in enumerate((KiB, 64 * KiB))]
    facts["kinds"] = {"obj1k": objects[0].label, "obj64k": objects[1].label,
                      "query": "Query hit, 100 rows"}
    facts["kinds_detail"] = (
        f"{objects[0].ipc_bytes:,}-byte and a {objects[1].ipc_bytes:,}-byte single-batch "
        f"object (IPC stream; {objects[0].table.num_rows} and {objects[1].table.num_rows} "
        f"rows of bench_data.make_table) and a cached 100-row query result "
        f"(`{HIT_SQL}`)")
    log("phase 1: an embedded server and a 2-node cluster")
    embedded = Node(binary, "embedded", work / "embedded" / "data", config,
                    work / "embedded.log")
    cluster = Cluster(binary, work, "hits", 2, redis, config)
    targets = {"shared": Target("shared", cluster[0].client, cluster.nodes, [redis.proc.pid]),
               "embedded": Target("embedded", embedded.client, [embedded])}
    both = [targets["shared"], targets["embedded"]]
    everything = Target("hits", None, cluster.nodes + [embedded], [redis.proc.pid])
    # Load through node 1: node 0 reads what another node wrote.
    for d in objects:
        for c in (embedded.client, cluster[1].client):
            do_put(c, f"bench/{d.name}", d.table)
    for c in (embedded.client, cluster[1].client):
        m = quiver_read(c, request(HIT_SQL))["meta"]
        if m.get("cache") != "miss":
            raise RuntimeError(f"the first read of the hit query was not a miss: {m}")
    # A read right after the filling client's stream ended may still find the fill running
    # and join it (seen in shared mode): ask until it is a hit, and record how it went.
    facts["first_read_after_fill"] = {}
    for t in both:
        t0, reads, first = time.monotonic(), 0, None
        while True:
            m = quiver_read(t.client, request(HIT_SQL))["meta"]
            reads, first = reads + 1, first or m
            if m.get("cache") == "hit":
                break
            if time.monotonic() > t0 + 10:
                raise RuntimeError(f"{t.name}: the query is not a hit: {m}")
            time.sleep(0.01)
        facts["first_read_after_fill"][t.name] = {
            "first": first, "reads_until_hit": reads, "seconds_until_hit": time.monotonic() - t0}
        for d in objects:
            got = t.client.do_get(flight.Ticket(f"bench/{d.name}".encode()), CALL).read_all()
            if not got.equals(d.table):
                raise RuntimeError(f"{t.name} returned a different bench/{d.name}")
    hit_ticket = ticket(HIT_SQL)
    fns = {"obj1k": lambda c: do_get(c, "bench/" + objects[0].name, objects[0].table.num_rows),
           "obj64k": lambda c: do_get(c, "bench/" + objects[1].name, objects[1].table.num_rows),
           "query": lambda c: do_get(c, hit_ticket, 100)}
    paired = PairedRuns(both, args.max_noise, args.retries)
    stats0 = {"shared": cluster[0].stats(), "embedded": embedded.stats()}
    blocks, cpu_us = {"shared": {}, "embedded": {}}, {"shared": {}, "embedded": {}}
    for kind, fn in fns.items():
        wait_for_idle_accounted(args.wait_idle)
        with Phase(everything, f"latency {kind}", facts):
            log(f"latency, {facts['kinds'][kind]}: {args.latency_requests} requests per server")
            for t in both:
                for _ in range(50):
                    fn(t.client)
            sent = {"shared": 0, "embedded": 0}

            def timed_block(t):
                sent[t.name] += BLOCK
                return [fn(t.client) * 1000 for _ in range(BLOCK)]

            gc.disable()
            try:
                got = paired.run(f"latency {kind}", args.latency_requests // BLOCK, timed_block)
            finally:
                gc.enable()
            for name in blocks:
                blocks[name][kind] = [s.result for s in got[name]]
                cpu_us[name][kind] = sum(s.server_cpu for s in got[name]) / sent[name] * 1e6
    raw["latency_blocks_ms"], raw["latency_server_cpu_us"] = blocks, cpu_us
    log("the Redis commands of a hit (MONITOR, untimed)")
    raw["redis_per_request"] = {k: redis_trace(redis, lambda: fn(cluster[0].client), 100)
                                for k, fn in fns.items()}

    conns = {t.name: [flight.connect(t.servers[0].location) for _ in range(args.threads)]
             for t in both}
    raw["throughput"] = {"shared": {}, "embedded": {}}
    for kind in ("query", "obj1k"):
        wait_for_idle_accounted(args.wait_idle)
        with Phase(everything, f"throughput {kind}", facts):
            log(f"throughput, {facts['kinds'][kind]}: {args.reps} windows of "
                f"{args.window:g} s per server, {args.threads} threads")
            for t in both:
                hammer(conns[t.name], fns[kind], min(0.5, args.window))  # warm-up
            done = {"shared": 0, "embedded": 0}

            def window(t):
                out = hammer(conns[t.name], fns[kind], args.window)
                done[t.name] += out["requests"]
                return out

            calls0 = redis_calls(redis)
            got = paired.run(f"throughput {kind}", args.reps, window)
            calls1 = redis_calls(redis)
            # EVALSHA and the like count once per call from a node (the commands a script
            # runs count separately): round trips per request under concurrency.
            raw.setdefault("throughput_redis_calls_per_request", {})[kind] = {
                k: (v - calls0.get(k, 0)) / done["shared"] for k, v in calls1.items()
                if v != calls0.get(k, 0)}
            for name, samples in got.items():
                raw["throughput"][name][kind] = [
                    {**s.result, "server_cpu_s": s.server_cpu, "client_cpu_s": s.client_cpu,
                     "other": s.other} for s in samples]
    for cs in conns.values():
        for c in cs:
            c.close()
    stats1 = {"shared": cluster[0].stats(), "embedded": embedded.stats()}
    for name, st in stats1.items():
        for what, a, b in (("query", st["queries"]["misses"], stats0[name]["queries"]["misses"]),
                           ("object", st["misses"], stats0[name]["misses"])):
            if a != b:
                raise RuntimeError(f"{name}: {a - b} {what} misses during the timed hit phases")
    facts["discarded_for_noise"] = paired.discarded
    facts["hit_phase_index"] = stats1["shared"]["index"]
    embedded.stop()
    cluster.stop()


# ---------------------------------------------------------------------------------------
# 2. Stampede on 3 nodes, 3. cross-node first batch


def cluster_phases(args, work, binary, redis, pg, live_cfg, wait_cfg, res):
    raw, facts = res["raw"], res["facts"]
    log("phases 2 and 3: a 3-node cluster (live_join true) and a 2-node one (false)")
    live = Cluster(binary, work, "live", 3, redis, live_cfg)
    wait = Cluster(binary, work, "wait", 2, redis, wait_cfg)
    group = Target("clusters", None, live.nodes + wait.nodes, [redis.proc.pid],
                   extra_cpu=pg.cpu)
    # Warm-up: every node opens its PostgreSQL connection.
    for n in live.nodes + wait.nodes:
        quiver_read(n.client, request(f"SELECT '{n.node_id}' AS warm"))

    def st_sql(tag):
        return slow_sql(tag, args.stampede_s, facts["stampede_rows"], 4)

    wait_for_idle_accounted(args.wait_idle)
    with Phase(group, "stampede", facts):
        lones, crowds = [], []
        tag = fresh_tag()
        stampede([live[0]], st_sql(tag), 1, pg, tag)  # warm-up
        log(f"stampede: {args.reps} x (a lone miss, {args.clients_per_node} clients on each "
            f"of 3 nodes)")
        for rep in range(args.reps):
            for who in (("lone", "crowd") if rep % 2 == 0 else ("crowd", "lone")):
                tag = fresh_tag()
                if who == "lone":
                    lones.append(stampede([live[rep % 3]], st_sql(tag), 1, pg, tag))
                else:
                    s = stampede(live.nodes, st_sql(tag), args.clients_per_node, pg, tag)
                    crowds.append(s)
                    log(f"  slowest {s['slowest_s']:.3f} s, executions "
                        f"{s['executions_by_key']} (db {s['db_executions']}), remote_joins "
                        f"{s['remote_joins']}")
                time.sleep(0.3)
        raw["stampede"] = {"lone": lones, "crowd": crowds}

    wait_for_idle_accounted(args.wait_idle)
    with Phase(group, "cross-node", facts):
        log(f"cross-node first batch: {args.reps} repetitions with live_join true and false")
        out = {"live": [], "wait": []}
        for rep in range(args.reps):
            for mode in (("live", "wait") if rep % 2 == 0 else ("wait", "live")):
                c, tag = (live if mode == "live" else wait), fresh_tag()
                sql = slow_sql(tag, args.stream_s, facts["stream_rows"], facts["stream_pauses"])
                x = cross_node(c[0], c[1], sql, pg, tag, mode)
                out[mode].append(x)
                log(f"  live_join {mode == 'live'}: B's first batch "
                    f"{x['b_first_minus_a_end_s']:+.3f} s from A's fill end, "
                    f"{x['b_wait_for_first_s']:.3f} s after B asked")
                time.sleep(0.3)
        raw["cross_node"] = out
    facts["final_stats"] = {n.node_id: {k: v for k, v in n.stats()["queries"].items()
                                        if k != "executions_by_key"}
                            for n in live.nodes + wait.nodes}
    live.stop()
    wait.stop()


# ---------------------------------------------------------------------------------------


def run(args, work: Path) -> dict:
    res: dict = {"raw": {}, "facts": {}}
    facts = res["facts"]
    binary = snapshot_with_facts(args.quiver, work, facts)
    facts.update(stampede_query_s=args.stampede_s, stream_query_s=args.stream_s,
                 stampede_rows=20_000 if not args.quick else 5_000,
                 stream_rows=60_000 if not args.quick else 20_000, stream_pauses=8,
                 fill_poll_s=0.2)
    try:
        log("starting PostgreSQL and redis-server")
        pg = Postgres()
        redis = start_redis(work)
        facts["software"] = {
            "quiver": subprocess.run([str(binary), "--version"], capture_output=True,
                                     text=True, timeout=30).stdout.strip() or "unknown",
            "redis": redis.client().info("server")["redis_version"],
            "postgresql": pg.version}
        live_cfg = write_config(work / "live.json", pg.uri)
        wait_cfg = write_config(work / "wait.json", pg.uri, live_join=False)
        hit_phase(args, work, binary, redis, live_cfg, res)
        cluster_phases(args, work, binary, redis, pg, live_cfg, wait_cfg, res)
    finally:
        stop_all()
    return res


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/shared_bench.py",
        description="Benchmark Quiver's shared mode (several `quiver serve` nodes on one "
                    "data dir and one Redis index): hit latency and throughput through a "
                    "shared node vs. an embedded server, a stampede on 3 nodes vs. a lone "
                    "miss, and the first batch of a query another node is filling with "
                    "live_join true vs. false. Prints a table and writes the figures with "
                    "machine details into docs/benchmarks.md.",
        epilog="Needs redis-server and PostgreSQL (scripts/setup.sh installs both). The full "
               "run takes about 2-3 minutes on 2 cores; --quick is a smoke run that leaves "
               "the docs alone. The binary: --quiver, else $QUIVER_BIN, else build/quiver.")
    p.add_argument("--quick", action="store_true",
                   help="seconds: 100 latency requests, 2 repetitions, 0.5 s windows, 4 "
                        "clients per node, shorter queries; does not write the docs")
    p.add_argument("--reps", type=int, default=None,
                   help="repetitions of each throughput window, stampede and cross-node "
                        "measurement [default: 5, --quick: 2]")
    p.add_argument("--latency-requests", type=int, default=None,
                   help="timed requests per kind and server, in blocks of 50 [default: 1000, "
                        "--quick: 100]")
    p.add_argument("--threads", type=int, default=8,
                   help="client threads of the throughput measurement [default: %(default)s]")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="length of one throughput window [default: 2, --quick: 0.5]")
    p.add_argument("--clients-per-node", type=int, default=None,
                   help="stampede clients on each of the 3 nodes [default: 16, --quick: 4]")
    p.add_argument("--stampede-s", type=float, default=None, metavar="SECONDS",
                   help="duration of the stampede's query [default: 1.5, --quick: 0.6]")
    p.add_argument("--stream-s", type=float, default=None, metavar="SECONDS",
                   help="duration of the cross-node streaming query [default: 2, --quick: 1]")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="before starting and before each phase, wait up to SECONDS for the "
                        "machine to be idle (under 10%% busy over 3 s) [default: 0]")
    p.add_argument("--max-noise", type=float, default=0.25, metavar="FRACTION",
                   help="run a throughput window (both servers' turns) again if other work "
                        "used more than FRACTION of the machine meanwhile [default: 0.25]")
    p.add_argument("--retries", type=int, default=None,
                   help="most windows discarded per phase for noise [default: --reps]")
    p.add_argument("--quiver",
                   default=os.environ.get("QUIVER_BIN") or str(ROOT / "build" / "quiver"),
                   help="the server binary, copied into the work dir before use [default: "
                        "$QUIVER_BIN or build/quiver]")
    add_output_args(p, "shared-bench", "data dirs, node and redis logs", RESULTS_DIR)
    args = p.parse_args(argv)

    def pick(value, full, quick):
        return value if value is not None else (quick if args.quick else full)

    args.reps = pick(args.reps, 5, 2)
    args.latency_requests = pick(args.latency_requests, 1000, 100)
    args.latency_requests = max(BLOCK, -(-args.latency_requests // BLOCK) * BLOCK)
    args.window = pick(args.window, 2.0, 0.5)
    args.clients_per_node = pick(args.clients_per_node, 16, 4)
    args.stampede_s = pick(args.stampede_s, 1.5, 0.6)
    args.stream_s = pick(args.stream_s, 2.0, 1.0)
    if args.no_docs:
        args.docs = None
    elif args.docs is None and not args.quick:
        args.docs = str(DEFAULT_DOCS)
    if min(args.reps, args.threads, args.clients_per_node) < 1:
        p.error("--reps, --threads and --clients-per-node must be at least 1")
    if min(args.window, args.stampede_s, args.stream_s) <= 0:
        p.error("--window, --stampede-s and --stream-s must be positive")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run_harness(shared_report, "shared-bench", "bench/shared_bench.py", argv, args, run, RESULTS_DIR,
                       kept="node logs *.log, redis/")


if __name__ == "__main__":
    sys.exit(main())
