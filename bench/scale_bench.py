#!/usr/bin/env python3
"""One node at scale: fill a `quiver serve` node with N small entries, restart it, and measure
what the issue's goals bound -- restart time, index memory per entry, get latency.

One run, from a copy of the binary, with `--memory-size 0` (no memory tier: the memory
figure is the index's), a large `--cache-size` and `max_entries` 0 (no limit) in a config
file:

  1. empty: start the node on an empty data dir; its RSS once it has answered a get and
     the stats action (the baseline of the memory figure);
  2. fill: put N 3-row tables (keys sK/oI, 1000 objects a session) from several client
     processes, each running threads with their own Flight connection (flight_load);
     the fill rate, the server's CPU per put; stats must show N entries;
  3. clean restarts: SIGTERM, wait for the exit, start again: the time from starting the
     process until it prints its listening line, until a get of a stored key is a hit and
     until stats shows all N entries; RSS then (VmRSS, RssAnon, RssFile, VmHWM); the stats
     action's `recovery` and `durability` objects when the binary reports them. Index
     memory per entry = (RSS after restart - RSS of the empty node) / N. Repeated
     (--restarts); then one restart with --no-verify-on-startup (how much is checksums);
  4. gets on the restarted node: p50/p99 of random stored keys from one client (after a
     warm-up), then from several client processes at once;
  5. unclean restart: put --extra new entries, SIGKILL the node at once, start it again:
     the same timings, and whether every entry came back;
  6. optionally (--cold) a restart with the page cache dropped (echo 3 >
     /proc/sys/vm/drop_caches, root only; it drops the whole machine's cache).

It prints a table with the issue's goals (met / not met, by how much), writes the raw results
to bench/results/scale-bench-<time>.json (git-ignored) and rewrites the section of
docs/benchmarks.md between <!-- scale-bench:begin --> and <!-- scale-bench:end --> (not with
--quick or --no-docs). Every process it starts is stopped on exit, errors included.

Run it with scripts/bench_scale.sh [ARGS] (sets up and builds first) or directly with
.venv/bin/python bench/scale_bench.py [ARGS]. The binary is build/quiver unless --quiver or
the QUIVER_BIN environment variable names another.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared bench_* modules

import bench_env  # noqa: E402  (puts tests/ on sys.path)
from bench_data import ROW_BYTES, make_table  # noqa: E402
from bench_env import (Phase, log, parse_size, percentile, status_kib,  # noqa: E402
                       wait_for_idle_accounted)
from bench_run import add_output_args, run_harness  # noqa: E402
from bench_servers import (QuiverProcess, do_get, serve_flags,  # noqa: E402
                           snapshot_with_facts)
from flight_load import GetKey, KeySpace, PutKey, run_load  # noqa: E402
from shared_cluster import STARTED, stop_all  # noqa: E402
import scale_report  # noqa: E402

bench_env.LOG_NAME = "scale-bench"

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_DOCS = ROOT / "docs" / "benchmarks.md"
FILL_KEYS = KeySpace("s", 1000)
EXTRA_KEYS = KeySpace("x", 1000)
ROWS = 3
STATS_KEYS = ("recovery", "durability")  # reported when the binary has them


# ---------------------------------------------------------------------------------------
# The node


class Node:
    """Starts and stops `quiver serve` on one data dir with the run's flags, and measures
    each start."""

    def __init__(self, binary: Path, work: Path, args, facts: dict):
        self.binary, self.work, self.args = binary, work, args
        self.data_dir = work / "data"
        config = work / "quiver.json"
        config.write_text(json.dumps({"max_entries": 0}))
        self.flags = ["--config", str(config), "--memory-size", "0",
                      "--cache-size", args.cache_size, *args.server_arg]
        facts["server_flags"] = self.flags[2:]
        facts["server_config"] = {"max_entries": 0}
        self.starts = 0
        self.proc: QuiverProcess | None = None

    def start(self, label: str, extra=(), expect_entries: int = 0,
              probe_key: str | None = None) -> dict:
        """Start the node; time until it listens, until probe_key is a hit and until stats
        shows expect_entries entries; then its memory and stats."""
        self.starts += 1
        log_path = self.work / f"quiver-{self.starts}-{label}.log"
        t0 = time.perf_counter()
        self.proc = QuiverProcess(f"quiver ({label})", self.binary, self.data_dir, log_path,
                                  [*self.flags, *extra], start_timeout=self.args.start_timeout)
        listening = time.perf_counter() - t0
        STARTED.append(self.proc)
        client = self.proc.client
        if probe_key is None:  # the empty node: a get that misses, as the others do a get
            try:
                do_get(client, "probe/none", ROWS)
            except pa.ArrowException:  # not found: a FlightError or an ArrowKeyError
                pass
            first_hit = None
        else:
            first_hit = self._until(lambda: self._hit(probe_key), "a get of a stored key to "
                                    "hit") - t0
        entries_at = self._until(lambda: self.proc.stats()["entries"] >= expect_entries,
                                 f"stats to show {expect_entries:,} entries") - t0
        time.sleep(self.args.settle)
        st = self.proc.stats()
        out = {"label": label, "listening_s": listening, "first_hit_s": first_hit,
               "all_entries_s": entries_at, "entries": st["entries"],
               "versions": st.get("versions"), "bytes": st.get("bytes"),
               "memory": self.memory(),
               "stats": {k: st[k] for k in STATS_KEYS if k in st},
               "log_recovery": recovery_line(log_path)}
        log(f"{label}: listening after {listening:.3f} s"
            + (f", first hit after {first_hit:.3f} s" if first_hit is not None else "")
            + f", {st['entries']:,} entries; RSS {out['memory']['VmRSS'] / 1024:.1f} MiB"
            + "".join(f"; {k} {json.dumps(v)}" for k, v in out["stats"].items()))
        return out

    def _hit(self, key: str) -> bool:
        try:
            do_get(self.proc.client, key, ROWS)
            return True
        except pa.ArrowException:
            return False

    def _until(self, cond, what: str) -> float:
        deadline = time.monotonic() + self.args.start_timeout
        while not cond():
            if self.proc.proc.poll() is not None:
                raise RuntimeError(f"quiver exited (code {self.proc.proc.returncode}) waiting "
                                   f"for {what}; see {self.proc.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gave up waiting for {what}")
            time.sleep(0.002)
        return time.perf_counter()

    def memory(self) -> dict:
        return {f: status_kib(self.proc.proc.pid, f)
                for f in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}

    def stop(self, kill: bool = False) -> dict:
        """SIGTERM and wait for the exit (a clean stop), or SIGKILL; the time it took."""
        p = self.proc
        t0 = time.perf_counter()
        p.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            code = p.proc.wait(timeout=self.args.start_timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{p.name} did not exit within {self.args.start_timeout:.0f} s "
                               f"of SIGTERM; see {p.log_path}")
        took = time.perf_counter() - t0
        p.stop()
        STARTED.remove(p)
        self.proc = None
        if not kill and code != 0:
            raise RuntimeError(f"{p.name} exited with code {code} after SIGTERM; see "
                               f"{p.log_path}")
        return {"seconds": took, "exit_code": code}


class NodeCpu:
    """The node as bench_env.Phase sees it: its CPU since its process started (0 while none
    runs, so that in a phase that starts the node all of the node's CPU is its own), plus
    the CPU of the client processes the phase ran (add it to `clients`), so that the
    phase's other-CPU figure is other work's."""

    class _Running:
        @staticmethod
        def poll():
            return None

    log_path = None

    def __init__(self, node: Node):
        self.node, self.clients = node, 0.0

    @property
    def proc(self):
        return self.node.proc.proc if self.node.proc else self._Running

    def cpu(self) -> float:
        return (self.node.proc.cpu() if self.node.proc else 0.0) + self.clients


def recovery_line(log_path: Path) -> str | None:
    """The node's 'recovered K keys, ...' log line (the index rebuild), if it wrote one."""
    try:
        for line in log_path.read_text(errors="replace").splitlines():
            if re.search(r"recovered .* keys", line):
                return line.split(" info ", 1)[-1].strip()
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------------------------
# Phases


def fill(args, node: Node, table, res) -> None:
    raw = res["raw"]
    wait_for_idle_accounted(args.wait_idle)
    log(f"fill: {args.entries:,} entries from {args.fill_procs} processes x "
        f"{args.fill_threads} threads")
    target = NodeCpu(node)
    with Phase(target, "fill", res["facts"]):
        cpu0 = node.proc.cpu()
        r = run_load(node.proc.location, PutKey(FILL_KEYS, table), args.fill_procs,
                     args.fill_threads, items=range(args.entries), label="fill")
        cpu = node.proc.cpu() - cpu0
        target.clients += r.client_cpu_s
    st = node.proc.stats()
    if st["entries"] != args.entries:
        raise RuntimeError(f"after the fill stats shows {st['entries']:,} entries, expected "
                           f"{args.entries:,}")
    raw["fill"] = {"entries": r.done, "seconds": r.seconds, "rate": r.rate,
                   "server_cpu_s": cpu, "client_cpu_s": r.client_cpu_s,
                   "per_process": r.per_process,
                   "memory_after": node.memory(), "bytes": st.get("bytes")}
    log(f"fill: {r.done:,} puts in {r.seconds:.1f} s ({r.rate:,.0f}/s; server CPU "
        f"{cpu / r.done * 1e6:.0f} µs per put)")


def gets(args, node: Node, res) -> None:
    raw, facts = res["raw"], res["facts"]
    rng = random.Random(7)
    client = node.proc.client
    wait_for_idle_accounted(args.wait_idle)
    with Phase(NodeCpu(node), "gets, one client", facts):
        log(f"gets: {args.get_warmup} warm-up + {args.gets:,} timed random keys, one client")
        for _ in range(args.get_warmup):
            do_get(client, FILL_KEYS.key(rng.randrange(args.entries)), ROWS)
        keys = [FILL_KEYS.key(rng.randrange(args.entries)) for _ in range(args.gets)]
        cpu0 = node.proc.cpu()
        gc.disable()
        try:
            t0 = time.perf_counter()
            lat = [do_get(client, k, ROWS) * 1000 for k in keys]
            wall = time.perf_counter() - t0
        finally:
            gc.enable()
        raw["gets_one"] = {"latencies_ms": lat, "seconds": wall,
                           "server_cpu_s": node.proc.cpu() - cpu0}
    log(f"gets, one client: p50 {percentile(lat, 50):.3f} ms, p99 {percentile(lat, 99):.3f} ms")
    wait_for_idle_accounted(args.wait_idle)
    target = NodeCpu(node)
    with Phase(target, "gets, several clients", facts):
        log(f"gets: {args.gets:,} random keys from {args.get_procs} client processes at once")
        items = [rng.randrange(args.entries) for _ in range(args.gets)]
        cpu0 = node.proc.cpu()
        r = run_load(node.proc.location, GetKey(FILL_KEYS, ROWS, args.entries), args.get_procs,
                     1, items=items, warmup=50, record=True, label="gets")
        target.clients += r.client_cpu_s
        raw["gets_many"] = {"latencies_ms": r.latencies_ms, "seconds": r.seconds,
                            "rate": r.rate, "server_cpu_s": node.proc.cpu() - cpu0,
                            "client_cpu_s": r.client_cpu_s}
    log(f"gets, {args.get_procs} clients: p50 {percentile(r.latencies_ms, 50):.3f} ms, p99 "
        f"{percentile(r.latencies_ms, 99):.3f} ms, {r.rate:,.0f}/s")


def drop_page_cache() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def data_dir_usage(path: Path) -> dict:
    """Disk blocks, apparent bytes and inodes (files and directories) under path (du)."""
    def du(*opts):
        out = subprocess.run(["du", "-s", *opts, str(path)], capture_output=True, text=True)
        return int(out.stdout.split()[0]) if out.returncode == 0 else None
    kib = du("-k")
    return {"disk_bytes": kib * 1024 if kib is not None else None,
            "apparent_bytes": du("-b"), "inodes": du("--inodes")}


def run(args, work: Path) -> dict:
    res: dict = {"raw": {}, "facts": {}}
    raw, facts = res["raw"], res["facts"]
    binary = snapshot_with_facts(args.quiver, work, facts)
    flags = serve_flags(binary)
    facts["software"] = {"quiver": subprocess.run([str(binary), "--version"],
                                                  capture_output=True, text=True,
                                                  timeout=30).stdout.strip() or "unknown"}
    facts["serve_has"] = {f: f in flags for f in ("--durability", "--no-verify-on-startup",
                                                  "--memory-size", "--max-entries")}
    table = make_table(ROWS * ROW_BYTES, ROWS * ROW_BYTES, 11)
    facts["table"] = {"rows": table.num_rows, "nbytes": table.nbytes,
                      "columns": table.schema.names}
    node = Node(binary, work, args, facts)
    probe = FILL_KEYS.key(args.entries - 1)
    try:
        wait_for_idle_accounted(args.wait_idle)
        raw["empty"] = node.start("empty")
        fill(args, node, table, res)
        raw["restarts"] = []
        for i in range(args.restarts):
            wait_for_idle_accounted(args.wait_idle)
            stop = node.stop()
            log(f"clean stop {i + 1}: {stop['seconds']:.3f} s")
            with Phase(NodeCpu(node), f"restart {i + 1}", facts):
                r = node.start(f"restart-{i + 1}", expect_entries=args.entries,
                               probe_key=probe)
            r["stop_before"] = stop
            raw["restarts"].append(r)
        if "--no-verify-on-startup" in flags:
            stop = node.stop()
            r = node.start("no-verify", extra=["--no-verify-on-startup"],
                           expect_entries=args.entries, probe_key=probe)
            r["stop_before"] = stop
            raw["restart_no_verify"] = r
        gets(args, node, res)
        raw["memory_after_gets"] = node.memory()

        log(f"unclean restart: {args.extra:,} more puts, then SIGKILL")
        r = run_load(node.proc.location, PutKey(EXTRA_KEYS, table), args.fill_procs,
                     args.fill_threads, items=range(args.extra), label="extra puts")
        raw["extra_puts"] = {"entries": r.done, "seconds": r.seconds}
        wait_for_idle_accounted(args.wait_idle)
        kill = node.stop(kill=True)
        expect = args.entries + args.extra
        with Phase(NodeCpu(node), "restart after SIGKILL", facts):
            r = node.start("after-sigkill", expect_entries=args.entries, probe_key=probe)
        r["stop_before"] = kill
        r["expected_entries"] = expect
        deadline = time.monotonic() + 10  # in case the last puts are replayed after listening
        while r["entries"] < expect and time.monotonic() < deadline:
            time.sleep(0.1)
            r["entries"] = node.proc.stats()["entries"]
        if r["entries"] != expect:
            log(f"after SIGKILL: {r['entries']:,} entries, expected {expect:,}")
        raw["restart_unclean"] = r

        if args.cold:
            stop = node.stop()
            log("cold restart: dropping the page cache (the whole machine's)")
            drop_page_cache()
            r = node.start("cold", expect_entries=expect, probe_key=probe)
            r["stop_before"] = stop
            raw["restart_cold"] = r
        node.stop()
        raw["data_dir"] = data_dir_usage(node.data_dir)
        raw["data_dir"]["entries"] = expect
    finally:
        stop_all()
    return res


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/scale_bench.py",
        description="Fill one `quiver serve` node with N small entries and measure the "
                    "restart time (clean and after SIGKILL), the index memory per entry and "
                    "the get latency against the issue's goals (at 1M entries: listening "
                    "within 3 s, at most 300 bytes of index per entry, get p99 at most "
                    "1 ms). Prints a table and writes the figures with machine details into "
                    "docs/benchmarks.md.",
        epilog="The fill needs about (N / fill rate) s and the data dir about 20 KiB per "
               "entry of disk (N = 1,000,000: ~20 GB). --quick fills 20,000 entries and "
               "leaves the docs alone. The binary: --quiver, else $QUIVER_BIN, else "
               "build/quiver.")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 20,000 entries, 1,000 gets, 2 restarts; does not write "
                        "the docs")
    p.add_argument("--entries", type=int, default=None,
                   help="entries to fill [default: 1,000,000; --quick: 20,000]")
    p.add_argument("--fill-procs", type=int, default=4,
                   help="client processes of the fill [default: %(default)s]")
    p.add_argument("--fill-threads", type=int, default=16,
                   help="threads (each with its own connection) per fill process "
                        "[default: %(default)s]")
    p.add_argument("--restarts", type=int, default=None,
                   help="clean restarts measured [default: 3; --quick: 2]")
    p.add_argument("--gets", type=int, default=None,
                   help="timed gets of random stored keys, from one client and again from "
                        "--get-procs processes [default: 5000; --quick: 1000]")
    p.add_argument("--get-warmup", type=int, default=500,
                   help="untimed gets before the timed ones [default: %(default)s]")
    p.add_argument("--get-procs", type=int, default=4,
                   help="client processes of the concurrent gets [default: %(default)s]")
    p.add_argument("--extra", type=int, default=None,
                   help="puts between the last clean start and the SIGKILL [default: 1000; "
                        "--quick: 200]")
    p.add_argument("--cold", action="store_true",
                   help="also restart once with the page cache dropped (root; drops the "
                        "whole machine's page cache)")
    p.add_argument("--cache-size", default="4TiB",
                   help="the node's --cache-size, large enough to evict nothing "
                        "[default: %(default)s]")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="one more argument for `quiver serve` (repeatable), e.g. "
                        "--server-arg=--durability=fsync")
    p.add_argument("--settle", type=float, default=1.0, metavar="SECONDS",
                   help="wait after a start before reading the memory [default: %(default)s]")
    p.add_argument("--start-timeout", type=float, default=900, metavar="SECONDS",
                   help="most seconds a start or a stop may take [default: %(default)s]")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="before each phase, wait up to SECONDS for the machine to be idle "
                        "(under 10%% busy over 3 s) [default: 0]")
    p.add_argument("--quiver",
                   default=os.environ.get("QUIVER_BIN") or str(ROOT / "build" / "quiver"),
                   help="the server binary, copied into the work dir before use [default: "
                        "$QUIVER_BIN or build/quiver]")
    add_output_args(p, "scale-bench", "the data dir and node logs", RESULTS_DIR)
    args = p.parse_args(argv)

    def pick(value, full, quick):
        return value if value is not None else (quick if args.quick else full)

    args.entries = pick(args.entries, 1_000_000, 20_000)
    args.restarts = pick(args.restarts, 3, 2)
    args.gets = pick(args.gets, 5000, 1000)
    args.extra = pick(args.extra, 1000, 200)
    parse_size(args.cache_size)  # a size the server will also accept
    if args.no_docs:
        args.docs = None
    elif args.docs is None and not args.quick:
        args.docs = str(DEFAULT_DOCS)
    if min(args.entries, args.fill_procs, args.fill_threads, args.restarts, args.gets,
           args.get_procs, args.extra) < 1:
        p.error("--entries, --fill-procs, --fill-threads, --restarts, --gets, --get-procs and "
                "--extra must be at least 1")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run_harness(scale_report, "scale-bench", "bench/scale_bench.py", argv, args, run,
                       RESULTS_DIR, kept="data/, node logs quiver-*.log")


if __name__ == "__main__":
    sys.exit(main())
