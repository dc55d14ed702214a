#!/usr/bin/env python3
"""Small writes: what a 1 KiB put costs in Quiver's durability modes, against Flame's object
cache and against the disk itself, measured in the same run.

Systems, all writing to data dirs in the same file system:
  * quiver (default): `quiver serve` with its default durability;
  * quiver (fsync): `quiver serve --durability fsync` (only if `quiver serve --help` lists
    --durability; otherwise the rows say it was skipped);
  * Flame's object cache (`flame-object-cache`, --flame-cache CMD; see flame_cache.py),
    written to as flamepy 0.6.0's put_object does;
  * raw: the durable write a put cannot beat, done by the harness itself: open a temp
    file, write the same IPC bytes, fsync, close, rename into place, fsync the directory
    (and, as a diagnostic, the same without the rename and the directory fsync).

Measured:
  1. put latency: --puts sequential puts per system (DoPut of a 1 KiB table until the
     PutResult; each a new key) after a warm-up, in blocks of 50 alternating between the
     systems (bench_servers.PairedRuns: a block during which other work used more than
     --max-noise of the machine is run again); p50/p99 over all of them;
  2. put throughput: 1 putter vs. --putters concurrent putters (client processes x threads,
     each thread with its own connection; flight_load), --reps windows of --window s per
     system and count, alternating; the raw baseline's putters are threads of the harness.

Goals (the issue's): Quiver default p50 <= 0.5x Flame's p50; Quiver fsync p50 <= 1.3x the raw
write+fsync+rename+directory fsync; 64 concurrent putters on Quiver fsync >= 10x one putter.
It prints a table, writes the raw results to bench/results/small-writes-bench-<time>.json
(git-ignored) and rewrites the section of docs/benchmarks.md between
<!-- small-writes-bench:begin --> and <!-- small-writes-bench:end --> (not with --quick or
--no-docs). Every process it starts is stopped on exit, errors included.

Run it with scripts/bench_small_writes.sh [ARGS] (sets up and builds first) or directly with
.venv/bin/python bench/small_writes_bench.py [ARGS]. The binary is build/quiver unless
--quiver or QUIVER_BIN names another; Flame's cache only runs with --flame-cache (or
$FLAME_CACHE_CMD).
"""
from __future__ import annotations

import argparse
import gc
import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared bench_* modules

import bench_env  # noqa: E402  (puts tests/ on sys.path)
from bench_data import Dataset, ipc_bytes, make_table  # noqa: E402
from bench_env import KiB, Phase, log, percentile, wait_for_idle_accounted  # noqa: E402
from bench_run import add_output_args, run_harness  # noqa: E402
from bench_servers import (PairedRuns, QuiverProcess, do_put, serve_flags,  # noqa: E402
                           snapshot_with_facts)
from flame_cache import FlameCache, FlamePut, flame_table  # noqa: E402
from flight_load import KeySpace, PutKey, run_load  # noqa: E402
from shared_cluster import STARTED, Target, stop_all  # noqa: E402
import small_writes_report  # noqa: E402

bench_env.LOG_NAME = "small-writes-bench"

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_DOCS = ROOT / "docs" / "benchmarks.md"
BLOCK = 50  # puts per turn, alternating systems


# ---------------------------------------------------------------------------------------
# The raw baseline


class RawDisk:
    """The harness writing files itself in `directory`: each put is a new file written
    under a temporary name, fsynced, closed, renamed into place and the directory fsynced
    (rename=True), or only written and fsynced (rename=False). Its CPU is the harness's."""

    def __init__(self, name: str, directory: Path, payload: bytes, rename: bool = True):
        self.name, self.payload, self.rename = name, payload, rename
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp = self.dir / ".tmp"
        self.tmp.mkdir(exist_ok=True)
        self.dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        self.counter = itertools.count()
        self._lock = threading.Lock()

    def cpu(self) -> float:
        return 0.0

    def put(self) -> float:
        with self._lock:
            n = next(self.counter)
        t0 = time.perf_counter()
        final = self.dir / f"{n:08d}.arrows"
        path = self.tmp / f"{n:08d}.part" if self.rename else final
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, self.payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        if self.rename:
            os.rename(path, final)
            os.fsync(self.dir_fd)
        return time.perf_counter() - t0

    def hammer(self, threads: int, seconds: float) -> dict:
        """`threads` threads putting for `seconds` (released together)."""
        counts, start = [0] * threads, threading.Barrier(threads + 1)
        deadline = [0.0]

        def worker(k):
            start.wait()
            while time.monotonic() < deadline[0]:
                self.put()
                counts[k] += 1

        ts = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
        for t in ts:
            t.start()
        deadline[0] = time.monotonic() + seconds
        t0 = time.monotonic()
        start.wait()
        for t in ts:
            t.join()
        took = time.monotonic() - t0
        return {"done": sum(counts), "seconds": took, "rate": sum(counts) / took}

    def close(self) -> None:
        os.close(self.dir_fd)


# ---------------------------------------------------------------------------------------
# The systems


class System:
    """One system under test: a Target (name, servers, CPU) for PairedRuns and Phase, how to
    put once from the harness (put() -> seconds), and the flight_load operation of its
    throughput windows (op(window) -> picklable op, or None for the raw baseline)."""

    def __init__(self, name: str, target, put, op=None, location: str | None = None):
        self.name, self.target, self.put, self.op, self.location = (name, target, put, op,
                                                                   location)


def quiver_system(name: str, binary: Path, work: Path, extra, table, tag: str) -> System:
    node = QuiverProcess(name, binary, work / tag / "data", work / f"{tag}.log", list(extra))
    STARTED.append(node)
    keys, counter = KeySpace(f"{tag}-", 1000), itertools.count()

    def put() -> float:
        return do_put(node.client, keys.key(next(counter)), table)[0]

    return System(name, Target(name, node.client, [node]), put,
                  lambda w: PutKey(KeySpace(f"{tag}-w{w}-", 1000), table), node.location)


def flame_system(command: str, work: Path, table) -> System:
    flame = FlameCache(command, work / "flame")
    STARTED.append(flame)
    ft = flame_table(table)
    one = FlamePut("latency", ft)
    return System("Flame", Target("Flame", flame.client, [flame]),
                  lambda: one(flame.client), lambda w: FlamePut(f"w{w}", ft), flame.location)


def raw_system(name: str, directory: Path, payload: bytes, rename: bool) -> System:
    raw = RawDisk(name, directory, payload, rename)
    STARTED.append(type("Closer", (), {"stop": lambda self: raw.close()})())
    return System(name, raw, raw.put)


# ---------------------------------------------------------------------------------------
# Phases


def latency_phase(args, systems: list[System], res) -> None:
    raw, facts = res["raw"], res["facts"]
    for s in systems:
        for _ in range(args.warmup):
            s.put()
    by_target = {s.target.name: s for s in systems}
    paired = PairedRuns([s.target for s in systems], args.max_noise, args.retries)
    wait_for_idle_accounted(args.wait_idle)
    everything = Target("all", None, [x for s in systems if isinstance(s.target, Target)
                                      for x in s.target.servers])
    with Phase(everything, "put latency", facts):
        log(f"put latency: {args.puts} puts per system in blocks of {BLOCK}, alternating "
            f"({', '.join(s.name for s in systems)})")
        gc.disable()
        try:
            got = paired.run("put latency", args.puts // BLOCK,
                             lambda t: [by_target[t.name].put() * 1000 for _ in range(BLOCK)])
        finally:
            gc.enable()
    raw["latency_blocks_ms"] = {name: [x.result for x in samples] for name, samples in got.items()}
    raw["latency_server_cpu_us"] = {name: sum(x.server_cpu for x in samples) / args.puts * 1e6
                                    for name, samples in got.items()}
    facts["discarded_for_noise"] = paired.discarded
    for name, blocks in raw["latency_blocks_ms"].items():
        xs = [x for b in blocks for x in b]
        log(f"  {name}: p50 {percentile(xs, 50):.3f} ms, p99 {percentile(xs, 99):.3f} ms")


def throughput_phase(args, systems: list[System], res) -> None:
    raw, facts = res["raw"], res["facts"]
    counts = (1, args.putters)
    threads = max(1, args.putters // args.putter_procs)
    out = {s.name: {str(c): [] for c in counts} for s in systems}
    clients_cpu = [0.0]
    servers = [x for s in systems if isinstance(s.target, Target) for x in s.target.servers]
    everything = Target("all", None, servers, extra_cpu=lambda: clients_cpu[0])
    window = itertools.count()
    wait_for_idle_accounted(args.wait_idle)
    with Phase(everything, "put throughput", facts):
        log(f"put throughput: 1 vs. {args.putters} putters ({args.putter_procs} processes x "
            f"{threads} threads; raw: threads), {args.reps} windows of {args.window:g} s")
        for rep in range(args.reps):
            order = systems if rep % 2 == 0 else systems[::-1]
            for s in order:
                for c in (counts if rep % 2 == 0 else counts[::-1]):
                    w = next(window)
                    cpu0 = s.target.cpu()
                    if s.op is None:
                        r = s.target.hammer(c, args.window)
                    else:
                        procs, per = (1, 1) if c == 1 else (args.putter_procs, threads)
                        lr = run_load(s.location, s.op(w), procs, per, seconds=args.window,
                                      warmup=2, label=f"{s.name} x{c}")
                        clients_cpu[0] += lr.client_cpu_s
                        r = {"done": lr.done, "seconds": lr.seconds, "rate": lr.rate,
                             "client_cpu_s": lr.client_cpu_s}
                    r["server_cpu_s"] = s.target.cpu() - cpu0
                    out[s.name][str(c)].append(r)
                    log(f"  {s.name}, {c} putter(s): {r['rate']:,.0f} puts/s")
    raw["throughput"] = out
    facts["putter_layout"] = {"procs": args.putter_procs, "threads": threads,
                              "putters": args.putter_procs * threads}


def run(args, work: Path) -> dict:
    res: dict = {"raw": {}, "facts": {}}
    raw, facts = res["raw"], res["facts"]
    binary = snapshot_with_facts(args.quiver, work, facts)
    flags = serve_flags(binary)
    facts["software"] = {"quiver": subprocess.run([str(binary), "--version"],
                                                  capture_output=True, text=True,
                                                  timeout=30).stdout.strip() or "unknown"}
    d = Dataset("obj-1KiB", "1 KiB table", make_table(KiB, KiB, 5))
    facts["object"] = {"label": d.label, "rows": d.table.num_rows, "nbytes": d.nbytes,
                       "ipc_bytes": d.ipc_bytes}
    payload = ipc_bytes(d.table)
    facts["has_durability"] = "--durability" in flags
    facts["flame_command"] = args.flame_cache
    try:
        systems = [quiver_system("Quiver (default)", binary, work, args.server_arg, d.table,
                                 "q-default")]
        if facts["has_durability"]:
            systems.append(quiver_system("Quiver (fsync)", binary, work,
                                         ["--durability", "fsync", *args.server_arg], d.table,
                                         "q-fsync"))
        else:
            log("quiver serve has no --durability flag: no fsync-mode rows")
        if args.flame_cache:
            systems.append(flame_system(args.flame_cache, work, d.table))
        else:
            log("no --flame-cache: no Flame rows")
        systems.append(raw_system("raw write+fsync+rename+dir fsync", work / "raw", payload,
                                  True))
        systems.append(raw_system("raw write+fsync", work / "raw-plain", payload, False))
        facts["systems"] = [s.name for s in systems]
        latency_phase(args, systems, res)
        throughput_phase(args, [s for s in systems if s.name != "raw write+fsync"], res)
        raw["stats"] = {}
        for s in systems:
            if s.name.startswith("Quiver"):
                st = s.target.servers[0].stats()
                raw["stats"][s.name] = {k: st[k] for k in ("durability", "puts", "put_failures")
                                        if k in st}
    finally:
        stop_all()
    return res


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/small_writes_bench.py",
        description="Benchmark 1 KiB puts: Quiver's default and fsync durability modes "
                    "against Flame's object cache and a raw write+fsync+rename+directory "
                    "fsync in the same file system (latency p50/p99), and the throughput of "
                    "1 vs. 64 concurrent putters. Prints a table and writes the figures with "
                    "machine details into docs/benchmarks.md.",
        epilog="Flame's cache runs only with --flame-cache CMD (or $FLAME_CACHE_CMD): a command "
               "line that starts flame-object-cache, in which {config}, {port} and {data_dir} "
               "are replaced, e.g. --flame-cache '/path/to/flame-object-cache --config "
               "{config}'. The full run takes about 2-4 minutes; --quick is a smoke run that "
               "leaves the docs alone.")
    p.add_argument("--quick", action="store_true",
                   help="seconds: 200 puts per system, 1 s windows, 1 repetition; does not "
                        "write the docs")
    p.add_argument("--puts", type=int, default=None,
                   help="timed sequential puts per system, in blocks of 50 [default: 2000; "
                        "--quick: 200]")
    p.add_argument("--warmup", type=int, default=50,
                   help="untimed puts per system first [default: %(default)s]")
    p.add_argument("--putters", type=int, default=64,
                   help="concurrent putters of the throughput comparison [default: "
                        "%(default)s]")
    p.add_argument("--putter-procs", type=int, default=4,
                   help="client processes the putters are spread over [default: %(default)s]")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="length of one throughput window [default: 3; --quick: 1]")
    p.add_argument("--reps", type=int, default=None,
                   help="throughput windows per system and putter count [default: 3; "
                        "--quick: 1]")
    p.add_argument("--flame-cache", default=os.environ.get("FLAME_CACHE_CMD"), metavar="CMD",
                   help="command line starting Flame's object cache, with {config} (and "
                        "optionally {port}, {data_dir}) replaced [default: $FLAME_CACHE_CMD; "
                        "none: no Flame rows]")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="one more argument for both `quiver serve` nodes (repeatable)")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="before each phase, wait up to SECONDS for the machine to be idle "
                        "(under 10%% busy over 3 s) [default: 0]")
    p.add_argument("--max-noise", type=float, default=0.25, metavar="FRACTION",
                   help="run a latency block (all systems' turns) again if other work used "
                        "more than FRACTION of the machine meanwhile [default: 0.25]")
    p.add_argument("--retries", type=int, default=None,
                   help="most blocks discarded for noise [default: the number of blocks]")
    p.add_argument("--quiver",
                   default=os.environ.get("QUIVER_BIN") or str(ROOT / "build" / "quiver"),
                   help="the server binary, copied into the work dir before use [default: "
                        "$QUIVER_BIN or build/quiver]")
    add_output_args(p, "small-writes-bench", "data dirs and server logs", RESULTS_DIR)
    args = p.parse_args(argv)

    def pick(value, full, quick):
        return value if value is not None else (quick if args.quick else full)

    args.puts = pick(args.puts, 2000, 200)
    args.puts = max(BLOCK, -(-args.puts // BLOCK) * BLOCK)
    args.window = pick(args.window, 3.0, 1.0)
    args.reps = pick(args.reps, 3, 1)
    if args.no_docs:
        args.docs = None
    elif args.docs is None and not args.quick:
        args.docs = str(DEFAULT_DOCS)
    if min(args.putters, args.putter_procs, args.reps) < 1 or args.window <= 0:
        p.error("--putters, --putter-procs, --reps and --window must be positive")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run_harness(small_writes_report, "small-writes-bench", "bench/small_writes_bench.py",
                       argv, args, run, RESULTS_DIR, kept="data dirs, *.log, flame/")


if __name__ == "__main__":
    sys.exit(main())
