#!/usr/bin/env python3
"""Large gets and puts: Quiver against the in-memory pyarrow Flight server, driven by the C++
load client (bench/flight_load.cc) and by the Python client, with the machine's own limits
measured in the same run.

One run starts Quiver (a copy of the binary, a fresh data dir) and bench/baseline_server.py,
and measures, each server's turns alternating:

  * the disk's own sequential write bandwidth: dd of the table's size into the data dir with
    conv=fdatasync (what a durable put cannot beat);
  * loopback TCP bandwidth: iperf3 on 127.0.0.1 with 1 and 4 streams (skipped, with a
    message, when iperf3 is not installed: apt-get install -y iperf3);
  * DoPut of the table (default 1 GiB in 64 MiB batches) with the Python client;
  * DoGet of it with the C++ client at 1 and 4 parallel streams (one connection each);
  * DoGet of it with the Python client, every repetition's ratio kept (the goal is "in every
    run", not on median);
  * DoPut with the C++ client (one stream), to show the put without the Python client's cost.

It prints the figures and the goals met or not, writes the raw results to
bench/results/load-bench-<time>.json (git-ignored) and rewrites the section of
docs/benchmarks.md between <!-- load-bench:begin --> and <!-- load-bench:end --> (not with
--quick or --no-docs; --report FILE.json rewrites it from an earlier run).

Run it with scripts/bench_load.sh [ARGS] (sets up and builds first) or directly with
.venv/bin/python bench/load_bench.py [ARGS].
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.flight as flight

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared bench_* modules

import bench_env  # noqa: E402
from bench_data import Dataset, make_table  # noqa: E402
from bench_env import (GiB, MiB, fmt_size, log, own_cpu_seconds,  # noqa: E402
                       parse_size, resident_fraction, wait_for_idle_accounted)
from bench_run import add_output_args, run_harness  # noqa: E402
from bench_servers import (CALL, PairedRuns, Sample, do_get, do_put, serve_flags,  # noqa: E402
                           quiver_blob, report_dead_servers, snapshot_with_facts,
                           start_baseline, start_quiver)
import load_report  # noqa: E402

bench_env.LOG_NAME = "load-bench"

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_CLIENT = ROOT / "build" / "bench" / "quiver_flight_load"
KEY = "bench/big"


# ---------------------------------------------------------------------------------------
# The machine's own limits


def disk_write(args, data_dir: Path) -> list[float]:
    """Seconds of each `dd if=/dev/zero of=DATA_DIR/... bs=64M conv=fdatasync` of the
    table's size: the device's sequential write bandwidth through the page cache, flushed."""
    bs = min(64 * MiB, args.size)
    count = max(1, args.size // bs)
    out = []
    target = data_dir / "dd-write-test"
    for _ in range(args.dd_reps):
        t0 = time.perf_counter()
        subprocess.run(["dd", "if=/dev/zero", f"of={target}", f"bs={bs}", f"count={count}",
                        "conv=fdatasync"], check=True, capture_output=True)
        out.append((time.perf_counter() - t0, bs * count))
        target.unlink()
    return [{"seconds": s, "bytes": n} for s, n in out]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    """Whether a socket listens on 127.0.0.1:port (/proc/net/tcp; no probe connection,
    which an iperf3 server would take for a test)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        return any(line.split()[1] == want and line.split()[3] == "0A"
                   for line in f.readlines()[1:])


def loopback_tcp(args) -> dict | None:
    """iperf3 over 127.0.0.1: {streams: [bytes/s per repetition]}, or None without iperf3."""
    if shutil.which("iperf3") is None:
        log("iperf3 is not installed: skipping the loopback TCP measurement "
            "(apt-get install -y iperf3)")
        return None
    port = free_port()
    server = subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = {}
    try:
        deadline = time.monotonic() + 10
        while not listening(port):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"iperf3 -s did not listen on 127.0.0.1:{port}")
            time.sleep(0.05)
        for streams in args.streams:
            out[streams] = []
            for _ in range(args.iperf_reps):
                got = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-J",
                                      "-t", str(args.iperf_seconds), "-P", str(streams)],
                                     capture_output=True, text=True, timeout=60)
                result = json.loads(got.stdout) if got.stdout.strip() else {}
                if got.returncode != 0 or "sum_received" not in result.get("end", {}):
                    raise RuntimeError(f"iperf3 -c failed ({got.returncode}): "
                                       f"{result.get('error', got.stderr.strip())}")
                out[streams].append(result["end"]["sum_received"]["bits_per_second"] / 8)
    finally:
        server.kill()
        server.wait()
    return out


# ---------------------------------------------------------------------------------------
# The C++ client


def task_busy_seconds() -> float:
    """CPU seconds all cores spent running tasks (user, nice, system) or stolen by the
    hypervisor, since boot: bench_env.machine_busy_seconds without irq and softirq time.
    The kernel's loopback TCP runs largely in softirq, which /proc charges to no process:
    counted, it made 40-60% of the machine look like other work during the gets, and every
    repetition was discarded."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (v[0] + v[1] + v[2] + v[7]) / os.sysconf("SC_CLK_TCK")


def measure_tasks(server, fn) -> Sample:
    """bench_servers.measure, with the client's CPU that of this process and the children it
    reaped meanwhile (the C++ client), and other work judged on task time (task_busy_seconds)
    so that the servers' loopback networking does not count as other work."""
    b0, c0, k0 = task_busy_seconds(), server.cpu(), own_cpu_seconds()
    t0 = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    srv, cli = server.cpu() - c0, own_cpu_seconds() - k0
    busy = task_busy_seconds() - b0
    other = max(0.0, busy - srv - cli) / (wall * (os.cpu_count() or 1))
    return Sample(wall, srv, cli, other, result)


def flight_load(client: Path, server, mode: str, *argv) -> dict:
    """One timed repetition of the C++ client (after its own warm-up for gets): its JSON."""
    cmd = [str(client), mode, "--endpoint", server.location, "--label", server.name,
           "--reps", "1", *argv]
    got = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if got.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({got.returncode}): {got.stderr.strip()}")
    runs = [json.loads(line) for line in got.stdout.splitlines() if line.startswith("{")]
    if len(runs) != 1:
        raise RuntimeError(f"{' '.join(cmd)} printed {len(runs)} results, expected 1")
    return runs[0]


def client_figures(samples, runs: int = 1) -> list[dict]:
    """Per repetition: the client's own timing (bytes, seconds) and CPU, the server's CPU,
    other work's share. The server's CPU covers the whole client process, `runs` identical
    transfers (its warm-up included): the timed one's share is 1/runs of it."""
    return [{"seconds": s.result["seconds"], "bytes": s.result["bytes"],
             "client_cpu_s": s.result["client_cpu_s"], "server_cpu_s": s.server_cpu / runs,
             "other": s.other} for s in samples]


# ---------------------------------------------------------------------------------------
# The run


def run(args, work: Path) -> dict:
    res = {"raw": {}, "facts": {}}
    raw, facts = res["raw"], res["facts"]
    binary = snapshot_with_facts(args.quiver, work, facts)
    facts["has_durability"] = "--durability" in serve_flags(binary)
    client = work / "quiver_flight_load"
    if not Path(args.client).is_file():
        raise SystemExit(f"{args.client} does not exist; build it (ninja quiver_flight_load, "
                         f"or scripts/bench_load.sh)")
    shutil.copy2(args.client, client)
    data_dir = work / "quiver-data"
    data_dir.mkdir()

    log("generating data")
    d = Dataset("big", f"{fmt_size(args.size)} table, {fmt_size(args.batch)} batches",
                make_table(args.size, args.batch, args.seed))
    facts["dataset"] = {"label": d.label, "rows": d.table.num_rows, "batches": d.batches,
                        "nbytes": d.nbytes, "ipc_bytes": d.ipc_bytes}

    def gate():
        wait_for_idle_accounted(args.wait_idle)

    gate()
    log(f"disk write bandwidth: dd of {fmt_size(args.size)} with conv=fdatasync, "
        f"{args.dd_reps}x")
    raw["dd"] = disk_write(args, data_dir)
    gate()
    log(f"loopback TCP: iperf3 {args.iperf_seconds} s, {args.iperf_reps}x per stream count")
    raw["iperf3_bytes_per_s"] = loopback_tcp(args)
    facts["iperf3"] = (subprocess.run(["iperf3", "--version"], capture_output=True, text=True)
                       .stdout.splitlines()[0] if raw["iperf3_bytes_per_s"] is not None
                       else None)

    servers = []
    try:
        quiver = start_quiver(binary, data_dir, work / "quiver.log",
                              max(8 * GiB, 2 * d.ipc_bytes))
        servers.append(quiver)
        baseline = start_baseline(work / "baseline.log")
        servers.append(baseline)
        both = [quiver, baseline]
        log(f"quiver at {quiver.location}, baseline at {baseline.location}, work dir {work}")
        paired = PairedRuns(both, args.max_noise, args.retries, measure=measure_tasks)

        gate()
        log(f"DoPut {d.label}, Python client: {args.put_reps} repetitions per server")
        got = paired.run("DoPut, Python client", args.put_reps,
                         lambda s: do_put(s.client, KEY, d.table))
        raw["put_python"] = {n: [{"seconds": x.wall, "server_cpu_s": x.server_cpu,
                                  "client_cpu_s": x.client_cpu, "other": x.other} for x in v]
                             for n, v in got.items()}
        version = got["quiver"][-1].result[1]["version"]
        for s in both:  # correctness, and the warm-up of the gets
            table = s.client.do_get(flight.Ticket(KEY.encode()), options=CALL).read_all()
            if not table.equals(d.table):
                raise RuntimeError(f"{s.name} returned a different {KEY}")
            del table
        blob = quiver_blob(data_dir, KEY, version)
        facts["quiver_file"] = {"bytes": blob.stat().st_size,
                                "resident_before_gets": resident_fraction(blob)}

        raw["get_cpp"] = {}
        for n in args.streams:
            gate()
            log(f"DoGet {d.label}, C++ client, {n} stream(s): {args.reps} repetitions per "
                f"server")
            got = paired.run(f"DoGet, C++ client, {n} streams", args.reps,
                               lambda s: flight_load(client, s, "get", "--ticket", KEY,
                                                     "--streams", str(n), "--expect-rows",
                                                     str(d.table.num_rows)))
            raw["get_cpp"][str(n)] = {name: client_figures(v, runs=2)  # with its warm-up
                                      for name, v in got.items()}

        gate()
        log(f"DoGet {d.label}, Python client: {args.py_reps} repetitions per server")
        for s in both:
            do_get(s.client, KEY, d.table.num_rows)  # warm-up
        got = paired.run("DoGet, Python client", args.py_reps,
                         lambda s: do_get(s.client, KEY, d.table.num_rows))
        raw["get_python"] = {n: [{"seconds": x.wall, "server_cpu_s": x.server_cpu,
                                  "client_cpu_s": x.client_cpu, "other": x.other} for x in v]
                             for n, v in got.items()}

        if args.cpp_put_reps > 0:
            gate()
            log(f"DoPut {d.label}, C++ client, 1 stream: {args.cpp_put_reps} repetitions per "
                f"server")
            got = paired.run("DoPut, C++ client", args.cpp_put_reps,
                               lambda s: flight_load(client, s, "put", "--key", "bench/cput",
                                                     "--size", str(args.size), "--batch",
                                                     str(args.batch)))
            raw["put_cpp"] = {name: client_figures(v) for name, v in got.items()}
        facts["quiver_file"]["resident_after_gets"] = resident_fraction(blob)
        facts["discarded_for_noise"] = paired.discarded
        stats = quiver.client.do_action(flight.Action("stats", b""), options=CALL)
        facts["quiver_stats"] = json.loads(next(iter(stats)).body.to_pybytes())
    except BaseException:
        report_dead_servers(servers)
        raise
    finally:
        for s in servers:
            s.stop()
    return res


# ---------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/load_bench.py",
        description="Large DoGet/DoPut: Quiver vs. the in-memory pyarrow Flight server with "
                    "the C++ load client (1 and 4 streams) and the Python client, against "
                    "loopback TCP (iperf3) and the disk's write bandwidth (dd) measured in "
                    "the same run; writes the load-bench section of docs/benchmarks.md.",
        epilog="Sizes accept B, KiB, MiB, GiB (and KB, MB, GB). The full run takes about 3 "
               "minutes on 2 cores; --quick is a smoke run that leaves the docs alone.")
    p.add_argument("--quick", action="store_true",
                   help="64 MiB table in 8 MiB batches, 2 repetitions, 1 s of iperf3")
    p.add_argument("--size", type=parse_size, default=None,
                   help="table size [default: 1GiB, --quick: 64MiB]")
    p.add_argument("--batch", type=parse_size, default=None,
                   help="batch size [default: 64MiB, --quick: 8MiB]")
    p.add_argument("--streams", default="1,4",
                   help="comma-separated stream counts of the C++ client's gets (and of "
                        "iperf3) [default: 1,4]")
    p.add_argument("--reps", type=int, default=None,
                   help="timed C++-client gets per server and stream count [default: 5, "
                        "--quick: 2]")
    p.add_argument("--py-reps", type=int, default=None,
                   help="timed Python-client gets per server [default: 7, --quick: 2]")
    p.add_argument("--put-reps", type=int, default=None,
                   help="timed Python-client puts per server [default: 3, --quick: 1]")
    p.add_argument("--cpp-put-reps", type=int, default=None,
                   help="timed C++-client puts per server; 0 skips them [default: 2, "
                        "--quick: 1]")
    p.add_argument("--dd-reps", type=int, default=None,
                   help="dd runs of the disk's write bandwidth [default: 2, --quick: 1]")
    p.add_argument("--iperf-seconds", type=int, default=None,
                   help="length of each iperf3 run [default: 3, --quick: 1]")
    p.add_argument("--iperf-reps", type=int, default=None,
                   help="iperf3 runs per stream count [default: 3, --quick: 1]")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="before the run and each phase, wait up to SECONDS for the machine "
                        "to be idle (under 10%% busy over 3 s) [default: 0, do not wait]")
    p.add_argument("--max-noise", type=float, default=0.25, metavar="FRACTION",
                   help="discard and repeat a repetition (both servers' turns) during which "
                        "other work used more than FRACTION of the machine [default: 0.25]")
    p.add_argument("--retries", type=int, default=None,
                   help="most repetitions discarded per phase for noise [default: as many "
                        "as the phase has]")
    p.add_argument("--seed", type=int, default=20251121, help="data seed [default: %(default)s]")
    p.add_argument("--quiver", default=os.environ.get("QUIVER_BIN")
                   or str(ROOT / "build" / "quiver"),
                   help="the Quiver binary, copied into the work dir before use [default: "
                        "$QUIVER_BIN, else build/quiver]")
    p.add_argument("--client", default=os.environ.get("QUIVER_LOAD_CLIENT")
                   or str(DEFAULT_CLIENT),
                   help="the C++ load client (bench/flight_load.cc), copied likewise "
                        "[default: $QUIVER_LOAD_CLIENT, else build/bench/quiver_flight_load]")
    add_output_args(p, "load-bench", "Quiver's data dir, server logs", RESULTS_DIR)
    args = p.parse_args(argv)

    def pick(value, full, quick):
        return value if value is not None else (quick if args.quick else full)

    args.size = pick(args.size, GiB, 64 * MiB)
    args.batch = pick(args.batch, 64 * MiB, 8 * MiB)
    args.reps = pick(args.reps, 5, 2)
    args.py_reps = pick(args.py_reps, 7, 2)
    args.put_reps = pick(args.put_reps, 3, 1)
    args.cpp_put_reps = pick(args.cpp_put_reps, 2, 1)
    args.dd_reps = pick(args.dd_reps, 2, 1)
    args.iperf_seconds = pick(args.iperf_seconds, 3, 1)
    args.iperf_reps = pick(args.iperf_reps, 3, 1)
    try:
        args.streams = sorted({int(x) for x in args.streams.split(",") if x.strip()})
    except ValueError:
        p.error(f"--streams: '{args.streams}' is not a list of numbers such as 1,4")
    if not args.streams or min(args.streams) < 1:
        p.error("--streams needs stream counts of at least 1")
    if min(args.reps, args.py_reps, args.put_reps, args.dd_reps, args.iperf_reps,
           args.iperf_seconds) < 1 or args.cpp_put_reps < 0:
        p.error("repetition counts must be at least 1 (--cpp-put-reps at least 0)")
    if args.no_docs:
        args.docs = None
    elif args.docs is None and not args.quick:
        args.docs = str(ROOT / "docs" / "benchmarks.md")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    return run_harness(load_report, "load-bench", "bench/load_bench.py", argv, args, run,
                       RESULTS_DIR, "Quiver's data dir and both servers' logs")


if __name__ == "__main__":
    sys.exit(main())
