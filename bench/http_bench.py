#!/usr/bin/env python3
"""HTTP benchmark: Quiver's HTTP interface against its Flight interface and against nginx
serving the same Arrow IPC bytes as static files (what a user might set up instead).

One run starts `quiver serve --http 127.0.0.1:0` on a fresh data dir and nginx (Debian's,
`sendfile on`, its own config in the work dir, one process) with a root holding a copy of
each object's stored IPC stream file, then, alternating between the systems:

  1. hit latency p50/p99 of small objects (default 1 KiB and 1 MiB, one batch each):
     GET /v1/objects/KEY over one keep-alive connection (Python's http.client, the body
     decoded into a table), the same bytes from nginx with the same client, and a Flight
     DoGet of the key (pyarrow, read_all); --latency-requests per system in blocks of 50;
  2. throughput of a large object (default 1 GiB in 64 MiB batches), with the Python clients
     (the same three) and with native clients: curl (one process per request) against both
     HTTP servers and the C++ Flight client bench/flight_load.cc against Flight.

Before timing, every system's response is checked once: both HTTP bodies byte-identical to
the file Quiver stored (sha256), the decoded table and Flight's equal to the table put.
Repetitions alternate between the systems (bench_servers.PairedRuns); a throughput
repetition during which other work used more than --max-noise of the machine is run again.
It prints a table (metric | Quiver HTTP | nginx | Quiver Flight | ratios), writes the raw
results to bench/results/http-bench-<time>.json (git-ignored) and rewrites the section of
docs/benchmarks.md between <!-- http-bench:begin --> and <!-- http-bench:end --> (not with
--quick or --no-docs). Every process it starts is stopped on exit, errors included.

Run it with scripts/bench_http.sh [ARGS] (sets up and builds first) or directly with
.venv/bin/python bench/http_bench.py [ARGS]. Needs nginx (`apt-get install nginx-light`);
curl and build/bench/quiver_flight_load are optional (their rows are skipped without them).
"""
from __future__ import annotations

import argparse
import gc
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared bench_* modules

import bench_env  # noqa: E402  (puts tests/ on sys.path)
from bench_data import Dataset, make_table  # noqa: E402
from bench_env import (GiB, KiB, MiB, Phase, fmt_size, log, parse_size,  # noqa: E402
                       percentile, resident_fraction, wait_for_idle_accounted)
from bench_run import add_output_args, run_harness  # noqa: E402
from bench_servers import (CALL, PairedRuns, do_get, do_put, quiver_blob,  # noqa: E402
                           snapshot_with_facts)
from load_bench import measure_tasks  # noqa: E402
from shared_cluster import STARTED, Target, stop_all  # noqa: E402
from http_servers import (HttpClient, Nginx, PreciseTarget, QuiverHttpProcess,  # noqa: E402
                          curl_get, file_sha256, find_nginx, flight_load_get)
import http_report  # noqa: E402

import pyarrow.flight as flight  # noqa: E402

bench_env.LOG_NAME = "http-bench"

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_DOCS = ROOT / "docs" / "benchmarks.md"
DEFAULT_LOAD_CLIENT = ROOT / "build" / "bench" / "quiver_flight_load"
BLOCK = 50  # requests per turn in the latency phase

HTTP, NGINX, FLIGHT = http_report.HTTP, http_report.NGINX, http_report.FLIGHT
PY, NATIVE = http_report.PY, http_report.NATIVE


class Object:
    """One object under test: its dataset, its key, and where each system serves it."""

    def __init__(self, d: Dataset, key: str):
        self.d, self.key = d, key
        self.rows = d.table.num_rows
        self.quiver_path = f"/v1/objects/{key}"
        self.nginx_path = f"/{key}.arrows"
        self.stored: Path | None = None
        self.ipc_bytes = 0


def store(quiver: QuiverHttpProcess, data_dir: Path, root: Path, o: Object) -> None:
    """Put o's table into Quiver (Flight DoPut) and copy the file Quiver stored into nginx's
    root, so that both serve the same bytes."""
    _, ref = do_put(quiver.client, o.key, o.d.table)
    o.stored = quiver_blob(data_dir, o.key, ref["version"])
    o.ipc_bytes = o.stored.stat().st_size
    dest = root / f"{o.key}.arrows"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(o.stored, dest)


def check(o: Object, http_q: HttpClient, http_n: HttpClient, quiver, facts: dict) -> None:
    """Each system's response once: the HTTP bodies byte-identical to Quiver's stored file,
    the decoded body and Flight's table equal to the table put."""
    want = file_sha256(o.stored)
    seen = {}
    for name, client, path in ((HTTP, http_q, o.quiver_path), (NGINX, http_n, o.nginx_path)):
        sha, n, headers = client.sha256(path)
        if sha != want or n != o.ipc_bytes:
            raise RuntimeError(f"{name} GET {path}: {n} bytes with sha256 {sha[:16]}, the "
                               f"stored stream has {o.ipc_bytes} bytes, sha256 {want[:16]}")
        if not client.get_table(path, o.rows).equals(o.d.table):
            raise RuntimeError(f"{name} GET {path}: the decoded table differs from the one put")
        seen[name] = {k: headers[k] for k in ("Content-Type", "Content-Length",
                                               "Transfer-Encoding") if k in headers}
    got = quiver.client.do_get(flight.Ticket(o.key.encode()), options=CALL).read_all()
    if not got.equals(o.d.table):
        raise RuntimeError(f"Flight DoGet {o.key}: the table differs from the one put")
    del got
    facts.setdefault("checks", {})[o.d.name] = {"sha256": want, "ipc_bytes": o.ipc_bytes,
                                                "headers": seen}
    log(f"  {o.d.label}: HTTP bodies byte-identical to the stored {o.ipc_bytes:,}-byte "
        f"stream (sha256 {want[:12]}...), tables equal over all three")


# ---------------------------------------------------------------------------------------
# Phases


def children_cpu_seconds() -> float:
    """CPU seconds of the client processes (curl, the C++ client) this one has reaped."""
    t = os.times()
    return t.children_user + t.children_system


def latency_phase(args, objs, targets, fetch, everything, res) -> None:
    """Per small object: --latency-requests sequential requests per system in blocks of
    BLOCK, alternating systems block by block."""
    raw, facts = res["raw"], res["facts"]
    raw["latency_us"], raw["latency_server_cpu_us"] = {}, {}
    paired = PairedRuns(targets, args.max_noise, args.retries)
    for o in objs:
        for t in targets:
            for _ in range(args.warmup):
                fetch[t.name](o)
        wait_for_idle_accounted(args.wait_idle)
        log(f"latency {o.d.label}: {args.latency_requests} requests per system in blocks of "
            f"{BLOCK}, alternating")

        def block(t, o=o):
            f, out = fetch[t.name], []
            for _ in range(BLOCK):
                t0 = time.perf_counter()
                f(o)
                out.append((time.perf_counter() - t0) * 1e6)
            return out

        with Phase(everything, f"latency {o.d.label}", facts):
            gc.disable()
            try:
                got = paired.run(f"latency {o.d.label}", args.latency_requests // BLOCK, block)
            finally:
                gc.enable()
        raw["latency_us"][o.d.name] = {n: [x.result for x in v] for n, v in got.items()}
        raw["latency_server_cpu_us"][o.d.name] = {
            n: sum(x.server_cpu for x in v) / (len(v) * BLOCK) * 1e6 for n, v in got.items()}
        for n, blocks in raw["latency_us"][o.d.name].items():
            xs = [x for b in blocks for x in b]
            log(f"  {n}: p50 {percentile(xs, 50):,.0f} µs, p99 {percentile(xs, 99):,.0f} µs")
    facts.setdefault("discarded_for_noise", {}).update(paired.discarded)


def throughput_phase(args, o: Object, label: str, targets, fn, runs: dict, everything,
                     res) -> None:
    """--reps transfers of the large object per system, alternating; fn(target) returns the
    transfer's own seconds. runs[name]: transfers per timed one in the same client process
    (the C++ client's warm-up), for the server CPU per GB."""
    raw, facts = res["raw"], res["facts"]
    for t in targets:
        fn(t)  # warm-up
    wait_for_idle_accounted(args.wait_idle)
    log(f"throughput {o.d.label}, {label.split(',')[0]}: {args.reps} transfers per system, "
        f"alternating")
    paired = PairedRuns(targets, args.max_noise, args.retries, measure=measure_tasks)
    with Phase(everything, f"throughput, {label}", facts):
        got = paired.run(f"throughput, {label}", args.reps, fn)
    out = raw.setdefault("throughput", {}).setdefault(label, {})
    raw.setdefault("throughput_object", {})[label] = o.d.name
    for name, samples in got.items():
        r = runs.get(name, 1)
        out[name] = [{"seconds": s.result, "wall": s.wall, "bytes": o.ipc_bytes,
                      "server_cpu_s": s.server_cpu / r, "client_cpu_s": s.client_cpu / r,
                      "other": s.other} for s in samples]
        rates = [o.ipc_bytes / s.result / 1e9 for s in samples]
        log(f"  {name}: " + ", ".join(f"{x:.2f}" for x in rates) + " GB/s")
    facts.setdefault("discarded_for_noise", {}).update(paired.discarded)


# ---------------------------------------------------------------------------------------


def run(args, work: Path) -> dict:
    res: dict = {"raw": {}, "facts": {}}
    raw, facts = res["raw"], res["facts"]
    binary = snapshot_with_facts(args.quiver, work, facts)
    facts["software"] = {"quiver": subprocess.run([str(binary), "--version"],
                                                  capture_output=True, text=True,
                                                  timeout=30).stdout.strip() or "unknown"}
    curl = shutil.which("curl")
    load_client = None
    if Path(args.load_client).is_file():
        load_client = work / "quiver_flight_load"
        shutil.copy2(args.load_client, load_client)
    else:
        log(f"{args.load_client} does not exist: no C++ Flight client rows (build it: ninja "
            f"-C build quiver_flight_load)")
    if curl is None:
        log("curl not found: no curl rows (apt-get install curl)")
    facts["software"]["curl"] = (" ".join(subprocess.run(
        [curl, "--version"], capture_output=True, text=True).stdout.split()[:2]) if curl
        else None)
    facts["software"]["flight_load"] = str(args.load_client) if load_client else None

    log("generating data")
    small = [Object(Dataset(f"obj-{fmt_size(s).replace(' ', '')}", f"{fmt_size(s)} object",
                            make_table(s, s, 7 + i)),
                    f"bench/obj-{fmt_size(s).replace(' ', '')}")
             for i, s in enumerate(args.latency_sizes)]
    big = Object(Dataset("big", f"{fmt_size(args.size)} table, {fmt_size(args.batch)} batches",
                         make_table(args.size, args.batch, 3)), "bench/big")
    large = [big]
    if args.fine_size:
        fine = Object(Dataset("fine", f"{fmt_size(args.fine_size)} table, "
                                      f"{fmt_size(args.fine_batch)} batches",
                              make_table(args.fine_size, args.fine_batch, 4)), "bench/fine")
        large.append(fine)
    objs = [*small, *large]
    try:
        data_dir, root = work / "quiver-data", work / "nginx-root"
        quiver = QuiverHttpProcess("quiver", binary, data_dir, work / "quiver.log",
                                   ["--max-object-bytes", str(max(8 * GiB, 2 * args.size)),
                                    *args.server_arg])
        STARTED.append(quiver)
        log(f"quiver at {quiver.location} and {quiver.http}; storing "
            + ", ".join(o.d.label for o in objs))
        for o in objs:
            store(quiver, data_dir, root, o)
        nginx = Nginx(args.nginx, work / "nginx", root)
        STARTED.append(nginx)
        facts["software"]["nginx"] = nginx.version
        facts["objects"] = {o.d.name: {"label": o.d.label, "rows": o.rows, "nbytes": o.d.nbytes,
                                       "ipc_bytes": o.ipc_bytes, "batches": o.d.batches}
                            for o in objs}
        log(f"nginx at {nginx.http} ({nginx.version}), root {root}")

        buf = bytearray(max(o.ipc_bytes for o in objs) + MiB)  # shared by both HTTP clients
        http_q, http_n = HttpClient(quiver.http, buf), HttpClient(nginx.http, buf)
        log("checking every system's response against the stored stream")
        for o in objs:
            check(o, http_q, http_n, quiver, facts)
        facts["resident_before"] = {"quiver": resident_fraction(big.stored),
                                    "nginx": resident_fraction(root / f"{big.key}.arrows")}
        for o in objs:  # keep only what the timing needs
            o.d.table = None
        gc.collect()

        # Server CPU of the latency turns from schedstat (ns), of the transfers from ticks.
        targets = [PreciseTarget(HTTP, http_q, [quiver]),
                   PreciseTarget(NGINX, http_n, [nginx]),
                   PreciseTarget(FLIGHT, quiver.client, [quiver])]
        fetch = {HTTP: lambda o: http_q.get_table(o.quiver_path, o.rows),
                 NGINX: lambda o: http_n.get_table(o.nginx_path, o.rows),
                 FLIGHT: lambda o: do_get(quiver.client, o.key, o.rows)}
        # Phase's "this run" CPU: both servers and the client processes this one reaped.
        everything = Target("all", None, [quiver, nginx], extra_cpu=children_cpu_seconds)
        latency_phase(args, small, targets, fetch, everything, res)

        def timed(name):
            def f(t):
                t0 = time.perf_counter()
                fetch[name](big)
                return time.perf_counter() - t0
            return f

        py = {t.name: timed(t.name) for t in targets}
        targets = [Target(t.name, t.client, t.servers) for t in targets]
        throughput_phase(args, big, PY, targets, lambda t: py[t.name](t), {},
                         everything, res)
        native = []
        if curl:
            native += [Target(HTTP, None, [quiver]), Target(NGINX, None, [nginx])]
        if load_client:
            native.append(Target(FLIGHT, None, [quiver]))

        def native_get(t, o):
            if t.name == FLIGHT:
                return flight_load_get(load_client, quiver.location, o.key, o.rows)["seconds"]
            base, path = (quiver.http, o.quiver_path) if t.name == HTTP else (nginx.http,
                                                                              o.nginx_path)
            return curl_get(base + path, o.ipc_bytes)["seconds"]

        for o in large if native else []:
            # The C++ client's server CPU covers its warm-up transfer and the timed one.
            throughput_phase(args, o, NATIVE if o is big else f"{NATIVE}, {o.d.label}",
                             native, lambda t, o=o: native_get(t, o), {FLIGHT: 2},
                             everything, res)
        facts["resident_after"] = {"quiver": resident_fraction(big.stored),
                                   "nginx": resident_fraction(root / f"{big.key}.arrows")}
        facts["native_clients"] = {HTTP: "curl" if curl else None,
                                   NGINX: "curl" if curl else None,
                                   FLIGHT: "quiver_flight_load" if load_client else None}
        facts["reconnects"] = {HTTP: http_q.reconnects, NGINX: http_n.reconnects}
        st = quiver.stats()
        raw["quiver_stats"] = {k: st[k] for k in ("gets", "hits", "memory", "disk_tier")
                               if k in st}
        http_q.close()
        http_n.close()
    finally:
        stop_all()
    return res


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/http_bench.py",
        description="Benchmark Quiver's HTTP interface (GET /v1/objects/KEY) against its "
                    "Flight DoGet and against nginx serving the same Arrow IPC bytes as "
                    "static files: hit latency p50/p99 of small objects and the throughput "
                    "of a large one, alternating between the systems in one run. Prints a "
                    "table and writes the figures with machine details into "
                    "docs/benchmarks.md.",
        epilog="Needs nginx (apt-get install nginx-light); curl and the C++ Flight client "
               "(ninja -C build quiver_flight_load) add the native-client rows. The full run "
               "takes 3-6 minutes; --quick (1 KiB, 1 MiB, 64 MiB) is a smoke run that leaves "
               "the docs alone.")
    p.add_argument("--quick", action="store_true",
                   help="seconds: a 64 MiB large object, 200 requests per latency size, 3 "
                        "transfers; does not write the docs")
    p.add_argument("--latency-sizes", type=parse_size, nargs="+", default=[KiB, MiB],
                   metavar="SIZE", help="objects timed for latency, one batch each "
                                        "[default: 1KiB 1MiB]")
    p.add_argument("--size", type=parse_size, default=None,
                   help="the large object timed for throughput [default: 1GiB; --quick: "
                        "64MiB]")
    p.add_argument("--batch", type=parse_size, default=None,
                   help="record batch size of the large object [default: 64MiB; --quick: "
                        "16MiB]")
    p.add_argument("--fine-size", type=parse_size, default=None,
                   help="a second large object in small batches, timed with the native clients "
                        "only (how the server's cost depends on the batch size); 0: none "
                        "[default: 256MiB; --quick: 64MiB]")
    p.add_argument("--fine-batch", type=parse_size, default=64 * KiB,
                   help="its record batch size [default: 64KiB]")
    p.add_argument("--latency-requests", type=int, default=None,
                   help="timed requests per system and latency size, in blocks of 50 "
                        "[default: 1000; --quick: 200]")
    p.add_argument("--warmup", type=int, default=50,
                   help="untimed requests per system and latency size first [default: "
                        "%(default)s]")
    p.add_argument("--reps", type=int, default=None,
                   help="timed transfers of the large object per system and client kind "
                        "[default: 5; --quick: 3]")
    p.add_argument("--nginx", default=None, metavar="PATH",
                   help="the nginx binary [default: nginx on PATH, else /usr/sbin/nginx]")
    p.add_argument("--load-client",
                   default=os.environ.get("QUIVER_LOAD_CLIENT") or str(DEFAULT_LOAD_CLIENT),
                   help="the C++ Flight client (bench/flight_load.cc), copied into the work "
                        "dir [default: $QUIVER_LOAD_CLIENT, else build/bench/quiver_flight_load]")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="one more argument for `quiver serve` (repeatable)")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="before each phase, wait up to SECONDS for the machine to be idle "
                        "(under 10%% busy over 3 s) [default: 0]")
    p.add_argument("--max-noise", type=float, default=0.25, metavar="FRACTION",
                   help="run a throughput repetition (all systems' turns) again if other work "
                        "used more than FRACTION of the machine meanwhile [default: 0.25]")
    p.add_argument("--retries", type=int, default=2,
                   help="most repetitions discarded for noise per phase (on a machine that is "
                        "busy throughout, more only make the run longer) [default: "
                        "%(default)s]")
    p.add_argument("--quiver",
                   default=os.environ.get("QUIVER_BIN") or str(ROOT / "build" / "quiver"),
                   help="the server binary, copied into the work dir before use [default: "
                        "$QUIVER_BIN or build/quiver]")
    add_output_args(p, "http-bench", "data dir, nginx root and config, logs", RESULTS_DIR)
    args = p.parse_args(argv)

    def pick(value, full, quick):
        return value if value is not None else (quick if args.quick else full)

    args.size = pick(args.size, GiB, 64 * MiB)
    args.batch = min(args.size, pick(args.batch, 64 * MiB, 16 * MiB))
    args.fine_size = pick(args.fine_size, 256 * MiB, 64 * MiB)
    args.latency_requests = pick(args.latency_requests, 1000, 200)
    args.latency_requests = max(BLOCK, -(-args.latency_requests // BLOCK) * BLOCK)
    args.reps = pick(args.reps, 5, 3)
    if not args.report:
        args.nginx = find_nginx(args.nginx)  # or exit saying how to install it
    if args.no_docs:
        args.docs = None
    elif args.docs is None and not args.quick:
        args.docs = str(DEFAULT_DOCS)
    if args.reps < 1 or args.warmup < 0 or min(args.latency_sizes) < 1 or args.fine_batch < 1:
        p.error("--reps and the sizes must be positive, --warmup not negative")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run_harness(http_report, "http-bench", "bench/http_bench.py", argv, args, run,
                       RESULTS_DIR, kept="data dir, nginx root and config, *.log")


if __name__ == "__main__":
    sys.exit(main())
