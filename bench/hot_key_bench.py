#!/usr/bin/env python3
"""A hot key across several expiries: what its readers wait for, with and without
stale-while-revalidate and XFetch early refresh.

One query whose execution takes a noticeable time (a SQLite recursive CTE, --cte-rows rows:
~0.2 s) is read in a loop by --clients concurrent clients (threads, a Flight connection
each) for --duration seconds, against a fresh `quiver serve` per mode, its source configured
with a short TTL (--ttl):

  * plain: no freshness (stale_while_revalidate_s 0, early_refresh_beta 0): at each expiry
    the readers that arrive miss and wait for the execution (one runs; they join it);
  * swr: stale_while_revalidate_s --swr: the expired result is served at once while one
    background refresh runs;
  * xfetch: early_refresh_beta --beta: a hit picked by XFetch refreshes the result before
    it expires;
  * swr+xfetch: both.

Every request is timed from the DoGet to the end of its stream (p50, p99, max per mode),
and counted by what the server said it was (fresh hit, stale hit, miss). The modes run one
after the other, --reps times in alternating order. It prints a table, writes the raw
results to bench/results/hot-key-bench-<time>.json (git-ignored) and rewrites the section of
docs/benchmarks.md between <!-- hot-key-bench:begin --> and <!-- hot-key-bench:end --> (not
with --quick or --no-docs). Every process it starts is stopped on exit, errors included.

Run it with .venv/bin/python bench/hot_key_bench.py [ARGS]. The binary is build/quiver
unless --quiver or QUIVER_BIN names another.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared bench_* modules

import pyarrow.flight as flight  # noqa: E402

import bench_env  # noqa: E402  (puts tests/ on sys.path)
from bench_env import log, wait_for_idle_accounted  # noqa: E402
from bench_run import add_output_args, run_harness  # noqa: E402
from bench_servers import QuiverProcess, snapshot_with_facts  # noqa: E402
import hot_key_report  # noqa: E402

bench_env.LOG_NAME = "hot-key-bench"

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_DOCS = ROOT / "docs" / "benchmarks.md"
MODES = ("plain", "swr", "xfetch", "swr+xfetch")


def slow_sql(rows: int) -> str:
    return (f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) "
            "SELECT count(*) AS c, sum(i) AS s FROM n")


def source_spec(mode: str, args, db: Path) -> dict:
    spec = {"driver": "sqlite", "uri": str(db), "ttl_s": args.ttl, "max_concurrent": 4,
            "stale_while_revalidate_s": 0, "early_refresh_beta": 0}
    if "swr" in mode:
        spec["stale_while_revalidate_s"] = args.swr
    if "xfetch" in mode:
        spec["early_refresh_beta"] = args.beta
    return spec


def read_loop(location: str, request: bytes, stop_at: float, out: list, errors: list) -> None:
    """One client: DoGet the query until stop_at; each request's (start, seconds, kind)."""
    client = flight.connect(location)
    ticket = flight.Ticket(request)
    try:
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            reader = client.do_get(ticket)
            first = reader.read_chunk()
            meta = json.loads(first.app_metadata.to_pybytes()) if first.app_metadata else {}
            reader.read_all()
            seconds = time.perf_counter() - t0
            kind = meta.get("cache", "?")
            if kind == "hit" and meta.get("stale"):
                kind = "stale"
            out.append((t0, seconds, kind))
    except Exception as e:  # noqa: BLE001 (reported by the run)
        errors.append(repr(e))
    finally:
        client.close()


def run_mode(mode: str, args, work: Path, binary: Path, db: Path, rep: int) -> dict:
    data = work / f"{mode.replace('+', '-')}-{rep}"
    data.mkdir()
    config = data / "config.json"
    config.write_text(json.dumps({"sources": {"hot": source_spec(mode, args, db)}}))
    srv = QuiverProcess(mode, binary, data / "data", data / "quiver.log",
                        ["--config", str(config)])
    try:
        request = json.dumps({"source": "hot", "sql": slow_sql(args.cte_rows)}).encode()
        # Warm up: the first execution (its cost is recorded with the entry).
        t0 = time.perf_counter()
        srv.client.do_get(flight.Ticket(request)).read_all()
        first_exec = time.perf_counter() - t0
        # The stream ends before the result is published: wait for it, or the clients'
        # first requests would join the finished execution (misses that are not expiries').
        deadline = time.monotonic() + 60
        while srv.stats()["entries"] < 1:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mode}: the warm-up's result was not published in 60 s")
            time.sleep(0.02)
        wait_for_idle_accounted(args.wait_idle)
        samples: list[list] = [[] for _ in range(args.clients)]
        errors: list[str] = []
        stop_at = time.monotonic() + args.duration
        threads = [threading.Thread(target=read_loop,
                                    args=(srv.location, request, stop_at, samples[i], errors))
                   for i in range(args.clients)]
        cpu0 = srv.cpu()
        gc.disable()
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            gc.enable()
        if errors:
            raise RuntimeError(f"{mode}: {len(errors)} requests failed, e.g. {errors[0]}")
        st = srv.stats()["queries"]
        out = {"mode": mode, "rep": rep, "first_exec_s": first_exec,
               "server_cpu_s": srv.cpu() - cpu0,
               "latencies_ms": [s[1] * 1000 for c in samples for s in c],
               "kinds": [s[2] for c in samples for s in c],
               "stats": {k: st.get(k, 0) for k in ("hits", "misses", "joins", "executions",
                                                   "failures", "stale_hits", "refreshes",
                                                   "early_refreshes")}}
        log(f"  {mode} (rep {rep + 1}): {len(out['latencies_ms']):,} requests, "
            f"{out['stats']['executions']} executions, {out['stats']['refreshes']} refreshes")
        return out
    finally:
        srv.stop()


def run(args, work: Path) -> dict:
    res: dict = {"raw": {"runs": []}, "facts": {}}
    facts = res["facts"]
    binary = snapshot_with_facts(args.quiver, work, facts)
    facts["software"] = {"quiver": subprocess.run([str(binary), "--version"],
                                                  capture_output=True, text=True,
                                                  timeout=30).stdout.strip() or "unknown"}
    db = work / "hot.db"
    sqlite3.connect(db).close()
    con = sqlite3.connect(db)
    t0 = time.perf_counter()
    con.execute(slow_sql(args.cte_rows)).fetchall()
    facts["query_s_in_python_sqlite"] = time.perf_counter() - t0
    con.close()
    facts["modes"] = list(args.modes)
    for rep in range(args.reps):
        order = args.modes if rep % 2 == 0 else args.modes[::-1]
        for mode in order:
            wait_for_idle_accounted(args.wait_idle)
            res["raw"]["runs"].append(run_mode(mode, args, work, binary, db, rep))
    return res


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/hot_key_bench.py",
        description="Latency of a hot query key across several expiries with N concurrent "
                    "clients, with and without stale-while-revalidate and XFetch early "
                    "refresh. Prints a table and writes the figures with machine details "
                    "into docs/benchmarks.md.")
    p.add_argument("--quick", action="store_true",
                   help="seconds: 4 s per mode, 1 repetition; does not write the docs")
    p.add_argument("--clients", type=int, default=8,
                   help="concurrent clients reading the key [default: %(default)s]")
    p.add_argument("--ttl", type=float, default=2.0,
                   help="the result's TTL, seconds [default: %(default)s]")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds of reading per mode and repetition [default: 12 (6 "
                        "expiries at the default TTL); --quick: 4]")
    p.add_argument("--reps", type=int, default=None,
                   help="repetitions of every mode, in alternating order [default: 2; "
                        "--quick: 1]")
    p.add_argument("--swr", type=float, default=30.0,
                   help="stale_while_revalidate_s of the swr modes [default: %(default)s]")
    p.add_argument("--beta", type=float, default=1.0,
                   help="early_refresh_beta of the xfetch modes [default: %(default)s]")
    p.add_argument("--cte-rows", type=int, default=300_000,
                   help="rows the query's recursive CTE counts (its cost) [default: "
                        "%(default)s]")
    p.add_argument("--modes", default=",".join(MODES),
                   help=f"comma-separated subset of {', '.join(MODES)} [default: all]")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="before each mode, wait up to SECONDS for the machine to be idle "
                        "[default: 0]")
    p.add_argument("--quiver",
                   default=os.environ.get("QUIVER_BIN") or str(ROOT / "build" / "quiver"),
                   help="the server binary, copied into the work dir before use [default: "
                        "$QUIVER_BIN or build/quiver]")
    add_output_args(p, "hot-key-bench", "data dirs and server logs", RESULTS_DIR)
    args = p.parse_args(argv)
    args.modes = [m for m in args.modes.split(",") if m]
    if any(m not in MODES for m in args.modes) or not args.modes:
        p.error(f"--modes: choose from {', '.join(MODES)}")
    args.duration = args.duration if args.duration is not None else (4.0 if args.quick
                                                                     else 12.0)
    args.reps = args.reps if args.reps is not None else (1 if args.quick else 2)
    if args.no_docs:
        args.docs = None
    elif args.docs is None and not args.quick:
        args.docs = str(DEFAULT_DOCS)
    if min(args.clients, args.reps) < 1 or min(args.duration, args.ttl) <= 0:
        p.error("--clients, --reps, --duration and --ttl must be positive")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run_harness(hot_key_report, "hot-key-bench", "bench/hot_key_bench.py", argv, args,
                       run, RESULTS_DIR, kept="data dirs, server logs, hot.db")


if __name__ == "__main__":
    sys.exit(main())
