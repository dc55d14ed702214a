#!/usr/bin/env python3
"""Flight benchmark: Quiver against the in-memory pyarrow Flight server a user would write.

One run starts both servers (build/quiver on a fresh data dir, bench/baseline_server.py),
loads the same generated tables into both with the same client code, and measures:

  * DoGet throughput of a large table in large batches (default 1 GiB in 64 MiB batches),
  * DoGet throughput of a table in many small batches (default 256 MiB in 64 KiB batches),
  * DoGet p50/p99 latency of small objects (default 1 KiB and 64 KiB, one batch each),
  * DoPut throughput of both tables,
  * a Quiver-only DoGet of the large table with its file evicted from the page cache.

Requests alternate between the servers so drift hits both; figures are medians over
repetitions after a warm-up, and a repetition disturbed by other work on the machine
(measured from /proc/stat) is run again. It prints a table (metric | quiver | baseline |
ratio) and rewrites the flight-bench section of docs/benchmarks.md (not with --quick
unless --docs is given). Raw per-repetition numbers go to bench/results/ (git-ignored);
--render rewrites the docs section from such a file without measuring.

Run it with scripts/bench.sh [ARGS] (sets up and builds first) or directly with
.venv/bin/python bench/flight_bench.py [ARGS].
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.flight as flight

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared bench_* modules

from bench_data import Dataset, make_table  # noqa: E402
from bench_docs import Results, Row, text_table, write_docs  # noqa: E402
from bench_env import (GiB, MiB, WAITED, evict_from_page_cache, fmt_size,  # noqa: E402
                       log, machine_busy_seconds, machine_details, machine_steal_seconds,
                       median, own_cpu_seconds, parse_size, percentile, resident_fraction,
                       spread, wait_for_idle, wait_for_idle_accounted)
from bench_servers import (CALL, PairedRuns, do_get, do_put, measure,  # noqa: E402
                           quiver_blob, report_dead_servers, snapshot_binary,
                           start_baseline, start_quiver)
from flight_report import (BEGIN_MARK, END_MARK, docs_section, history_lines,  # noqa: E402
                           run_history)

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_DOCS = ROOT / "docs" / "benchmarks.md"


# ---------------------------------------------------------------------------------------
# The benchmark


def run(args) -> Results:
    res = Results()
    seed = args.seed

    log("generating data")
    t0 = time.perf_counter()
    big = Dataset("big", f"{fmt_size(args.big)} table, {fmt_size(args.big_batch)} batches",
                  make_table(args.big, args.big_batch, seed))
    small = Dataset("small",
                    f"{fmt_size(args.small)} table, {fmt_size(args.small_batch)} batches",
                    make_table(args.small, args.small_batch, seed + 1))
    lat = [Dataset(f"lat-{fmt_size(s).replace(' ', '')}", f"{fmt_size(s)} object",
                   make_table(s, s, seed + 2 + i)) for i, s in enumerate(args.latency_sizes)]
    log(f"data ready in {time.perf_counter() - t0:.1f} s: "
        + ", ".join(f"{d.name}: {d.table.num_rows} rows, {d.batches} batches, "
                    f"nbytes {d.nbytes}, IPC {d.ipc_bytes}" for d in [big, small, *lat]))
    res.facts["datasets"] = {d.name: {"label": d.label, "rows": d.table.num_rows,
                                      "batches": d.batches, "nbytes": d.nbytes,
                                      "ipc_bytes": d.ipc_bytes} for d in [big, small, *lat]}

    def gate():
        """With --wait-idle, let other work on the machine finish before each phase."""
        wait_for_idle_accounted(args.wait_idle)

    work = Path(tempfile.mkdtemp(prefix="flight-bench-", dir=args.work_dir))
    data_dir = work / "quiver-data"
    res.facts["machine"] = machine_details(work)
    quiver_bin = work / "quiver"
    snapshot_binary(Path(args.quiver), quiver_bin)
    res.facts["quiver_version"] = subprocess.run([str(quiver_bin), "--version"],
                                                 capture_output=True, text=True).stdout.strip()
    res.facts["quiver_binary"] = {
        "path": str(args.quiver),
        "sha256": hashlib.sha256(quiver_bin.read_bytes()).hexdigest()[:16],
        "mtime": dt.datetime.fromtimestamp(Path(args.quiver).stat().st_mtime)
                   .astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }
    max_object = max(8 * GiB, 2 * big.ipc_bytes, 2 * small.ipc_bytes)
    servers = []
    failed = True
    try:
        quiver = start_quiver(quiver_bin, data_dir, work / "quiver.log", max_object)
        servers.append(quiver)
        baseline = start_baseline(work / "baseline.log")
        servers.append(baseline)
        both = [quiver, baseline]
        log(f"quiver at {quiver.location}, baseline at {baseline.location}, work dir {work}")

        paired = PairedRuns(both, args.max_noise, args.retries)
        # --- DoPut ------------------------------------------------------------------
        put_samples = {s.name: {} for s in both}
        versions = {}

        def put(s, key, d):
            _, ref = do_put(s.client, key, d.table)
            if s is quiver:
                versions[key] = ref["version"]

        for d in (big, small):
            gate()
            log(f"DoPut {d.label}: {args.put_reps} repetitions per server")
            key = f"bench/{d.name}"
            got = paired.run(f"DoPut {d.label}", args.put_reps, lambda s: put(s, key, d))
            for name, samples in got.items():
                put_samples[name][d.name] = samples
        put_times = {n: {k: [x.wall for x in v] for k, v in per.items()}
                     for n, per in put_samples.items()}
        put_cpu = {n: {k: [x.server_cpu for x in v] for k, v in per.items()}
                   for n, per in put_samples.items()}
        for d in lat:
            for s in both:
                _, ref = do_put(s.client, f"bench/{d.name}", d.table)
                if s is quiver:
                    versions[f"bench/{d.name}"] = ref["version"]
        res.raw["put_seconds"] = put_times
        res.raw["put_server_cpu_seconds"] = put_cpu

        # --- correctness check and warm-up ------------------------------------------
        log("checking that both servers return the stored tables (also the warm-up)")
        for d in [big, small, *lat]:
            for s in both:
                got = s.client.do_get(flight.Ticket(f"bench/{d.name}".encode()),
                                      options=CALL).read_all()
                if not got.equals(d.table):
                    raise RuntimeError(f"{s.name} returned a different bench/{d.name}")
                del got
        big_blob = quiver_blob(data_dir, "bench/big", versions["bench/big"])
        resident = resident_fraction(big_blob)
        res.facts["quiver_big_file"] = {"bytes": big_blob.stat().st_size,
                                        "resident_before_gets": resident}
        log(f"Quiver's file for bench/big: {big_blob.stat().st_size} bytes, "
            f"{resident:.1%} in the page cache")

        # --- DoGet throughput -------------------------------------------------------
        get_samples = {s.name: {} for s in both}
        for d in (big, small):
            gate()
            log(f"DoGet {d.label}: {args.reps} repetitions per server")
            key = f"bench/{d.name}"
            for s in both:
                do_get(s.client, key, d.table.num_rows)  # warm-up
            got = paired.run(f"DoGet {d.label}", args.reps,
                             lambda s: do_get(s.client, key, d.table.num_rows))
            for name, samples in got.items():
                get_samples[name][d.name] = samples
        get_times = {n: {k: [x.wall for x in v] for k, v in per.items()}
                     for n, per in get_samples.items()}
        get_cpu = {n: {k: [x.server_cpu for x in v] for k, v in per.items()}
                   for n, per in get_samples.items()}
        client_cpu = {n: {k: [x.client_cpu for x in v] for k, v in per.items()}
                      for n, per in get_samples.items()}
        res.raw["get_other_share"] = {n: {k: [x.other for x in v] for k, v in per.items()}
                                      for n, per in get_samples.items()}
        res.raw["put_other_share"] = {n: {k: [x.other for x in v] for k, v in per.items()}
                                      for n, per in put_samples.items()}
        res.raw["get_seconds"] = get_times
        res.raw["get_server_cpu_seconds"] = get_cpu
        res.raw["get_client_cpu_seconds"] = client_cpu
        res.facts["quiver_big_file"]["resident_after_gets"] = resident_fraction(big_blob)

        # --- DoGet latency ----------------------------------------------------------
        # Blocks of `block` sequential requests, alternating servers block by block.
        lat_us = {s.name: {} for s in both}
        lat_cpu = {s.name: {} for s in both}
        block = max(1, min(50, args.latency_requests))
        for d in lat:
            gate()
            log(f"DoGet latency {d.label}: {args.latency_requests} requests per server")
            key = f"bench/{d.name}"
            rows = d.table.num_rows
            for s in both:
                for _ in range(min(50, args.latency_requests)):
                    do_get(s.client, key, rows)  # warm-up

            def timed_block(s):
                return [do_get(s.client, key, rows) * 1e6 for _ in range(block)]

            gc.disable()
            try:
                got = paired.run(f"DoGet latency {d.label} (blocks of {block})",
                                 -(-args.latency_requests // block), timed_block)
            finally:
                gc.enable()
            for s in both:
                lat_us[s.name][d.name] = [t for x in got[s.name] for t in x.result]
                lat_cpu[s.name][d.name] = sum(x.server_cpu for x in got[s.name])
        res.raw["latency_us"] = lat_us
        res.raw["latency_server_cpu_seconds_total"] = lat_cpu

        # --- cold DoGet (Quiver only) -----------------------------------------------
        cold, cold_other, cold_resident = [], [], []
        if args.cold_reps > 0:
            gate()
            log(f"DoGet {big.label} with Quiver's file evicted from the page cache: "
                f"{args.cold_reps} repetitions")
            for _ in range(args.cold_reps):
                evict_from_page_cache(big_blob)
                cold_resident.append(resident_fraction(big_blob))
                gc.collect()
                sample = measure(quiver,
                                 lambda: do_get(quiver.client, "bench/big", big.table.num_rows))
                cold.append(sample.wall)
                cold_other.append(sample.other)
        res.raw["cold_get_seconds"] = cold
        res.raw["cold_other_share"] = cold_other
        res.facts["cold_resident_before_get"] = cold_resident

        res.facts["discarded_for_noise"] = paired.discarded
        shares = [x for per in (get_samples, put_samples) for srv in per.values()
                  for v in srv.values() for x in (s.other for s in v)] + cold_other
        res.facts["timed_other_share"] = {"median": median(shares), "max": max(shares)}
        stats = quiver.client.do_action(flight.Action("stats", b""), options=CALL)
        res.facts["quiver_stats"] = json.loads(next(iter(stats)).body.to_pybytes())
    except BaseException:
        failed = True
        report_dead_servers(servers)
        raise
    else:
        failed = False
    finally:
        for s in servers:
            s.stop()
        res.facts["machine"]["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        if args.keep_data or failed:
            log(f"kept the work dir {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    # --- rows ---------------------------------------------------------------------
    def gbps(nbytes, secs):
        return [nbytes / t / 1e9 for t in secs]

    for d in (big, small):
        q = gbps(d.nbytes, get_times["quiver"][d.name])
        b = gbps(d.nbytes, get_times["baseline"][d.name])
        res.rows.append(Row(f"DoGet {d.label}", "GB/s", True, median(q), median(b),
                            spread(q), spread(b)))
    for d in lat:
        q, b = lat_us["quiver"][d.name], lat_us["baseline"][d.name]
        for p in (50, 99):
            res.rows.append(Row(f"DoGet {d.label}, p{p}", "µs", False,
                                percentile(q, p), percentile(b, p)))
    for d in (big, small):
        q = gbps(d.nbytes, put_times["quiver"][d.name])
        b = gbps(d.nbytes, put_times["baseline"][d.name])
        res.rows.append(Row(f"DoPut {d.label}", "GB/s", True, median(q), median(b),
                            spread(q), spread(b)))
    if cold:
        q = gbps(big.nbytes, cold)
        res.rows.append(Row(f"DoGet {big.label}, Quiver's file evicted from the page "
                            "cache (vs. baseline from RAM)", "GB/s", True, median(q),
                            res.rows[0].baseline, spread(q), None))

    def per_gb(cpu, d):
        return {s: [c / (d.nbytes / 1e9) for c in cpu[s][d.name]]
                for s in ("quiver", "baseline")}

    for what, cpu, sets in (("Server CPU per GB served by DoGet", get_cpu, (big, small)),
                            ("Client CPU per GB received by DoGet", client_cpu, (big, small)),
                            ("Server CPU per GB stored by DoPut", put_cpu, (big, small))):
        for d in sets:
            x = per_gb(cpu, d)
            res.rows.append(Row(f"{what}, {d.label}", "CPU-s/GB", False,
                                median(x["quiver"]), median(x["baseline"]),
                                spread(x["quiver"]), spread(x["baseline"]), diag=True))
    for d in lat:
        n = len(lat_us["quiver"][d.name])
        res.rows.append(Row(f"Server CPU per DoGet request, {d.label}", "µs", False,
                            lat_cpu["quiver"][d.name] / n * 1e6,
                            lat_cpu["baseline"][d.name] / n * 1e6, diag=True))
    return res


# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/flight_bench.py",
        description="Benchmark Quiver's Flight DoGet/DoPut against an in-memory pyarrow "
                    "Flight server (bench/baseline_server.py) in one run, print a table "
                    "with the ratio Quiver/baseline, and write the figures with machine "
                    "details into docs/benchmarks.md.",
        epilog="Sizes accept B, KiB, MiB, GiB (and KB, MB, GB). The full run takes a few "
               "minutes on 2 cores; --quick is a smoke run that does not touch the docs "
               "unless --docs is given.",
)
    p.add_argument("--quick", action="store_true",
                   help="small sizes and few repetitions (64 MiB large table, 16 MiB "
                        "small-batch table, 2 reps, 100 latency requests, 1 cold get)")
    p.add_argument("--big", type=parse_size, default=None,
                   help="size of the large table [default: 1GiB, --quick: 64MiB]")
    p.add_argument("--big-batch", type=parse_size, default=None,
                   help="batch size of the large table [default: 64MiB, --quick: 8MiB]")
    p.add_argument("--small", type=parse_size, default=None,
                   help="size of the many-small-batches table [default: 256MiB, --quick: "
                        "16MiB]")
    p.add_argument("--small-batch", type=parse_size, default=parse_size("64KiB"),
                   help="batch size of the many-small-batches table [default: 64KiB]")
    p.add_argument("--latency-sizes", default="1KiB,64KiB",
                   help="comma-separated sizes of the single-batch objects timed for latency [default: 1KiB,64KiB]")
    p.add_argument("--reps", type=int, default=None,
                   help="timed repetitions per server of each throughput get [default: 7, "
                        "--quick: 2]")
    p.add_argument("--put-reps", type=int, default=None,
                   help="timed repetitions per server of each put [default: 3, --quick: 1]")
    p.add_argument("--latency-requests", type=int, default=None,
                   help="timed requests per server and object [default: 1000, --quick: 100]")
    p.add_argument("--cold-reps", type=int, default=None,
                   help="Quiver-only gets of the large table with its file evicted from the "
                        "page cache; 0 skips them [default: 3, --quick: 1]")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="before starting and before each phase, wait up to SECONDS for the "
                        "machine to be idle (under 10%% busy over 3 s); for shared machines "
                        "[default: 0, do not wait]")
    p.add_argument("--max-noise", type=float, default=0.25, metavar="FRACTION",
                   help="discard and repeat a repetition (both servers' turns) during which "
                        "other work used more than FRACTION of the machine's CPU "
                        "[default: 0.25; 1 disables]")
    p.add_argument("--retries", type=int, default=None,
                   help="most repetitions discarded per phase for noise [default: as many "
                        "as the phase has]")
    p.add_argument("--seed", type=int, default=20251121, help="data generator seed [default: %(default)s]")
    p.add_argument("--quiver", default=str(ROOT / "build" / "quiver"),
                   help="the Quiver server binary, copied into the work dir before use "
                        "[default: build/quiver]")
    p.add_argument("--work-dir", default=str(RESULTS_DIR),
                   help="where the run's temporary dir (Quiver's data dir, server logs) is "
                        "created; it should be on the disk you want to measure [default: "
                        "bench/results]")
    p.add_argument("--keep-data", action="store_true",
                   help="keep the run's temporary dir (data and server logs)")
    p.add_argument("--docs", default=None,
                   help=f"markdown file whose flight-bench section is rewritten [default: "
                        f"{DEFAULT_DOCS.relative_to(ROOT)}; not written with --quick]")
    p.add_argument("--no-docs", action="store_true", help="do not write the docs file")
    p.add_argument("--render", metavar="JSON", default=None,
                   help="do not measure: rewrite the docs section from the raw results of "
                        "an earlier run (a bench/results/flight-bench-*.json file)")
    p.add_argument("--json", default=None,
                   help="where to write the raw results as JSON [default: "
                        "bench/results/flight-bench-<time>.json]")
    args = p.parse_args(argv)

    def pick(value, full, quick):
        return value if value is not None else (quick if args.quick else full)

    args.big = pick(args.big, GiB, 64 * MiB)
    args.big_batch = pick(args.big_batch, 64 * MiB, 8 * MiB)
    args.small = pick(args.small, 256 * MiB, 16 * MiB)
    args.reps = pick(args.reps, 7, 2)
    args.put_reps = pick(args.put_reps, 3, 1)
    args.latency_requests = pick(args.latency_requests, 1000, 100)
    if args.latency_requests > 50:  # whole blocks of 50 (see run())
        args.latency_requests = -(-args.latency_requests // 50) * 50
    args.cold_reps = pick(args.cold_reps, 3, 1)
    args.latency_sizes = [parse_size(s) for s in args.latency_sizes.split(",") if s.strip()]
    if args.no_docs:
        args.docs = None
    elif args.docs is None and not args.quick:
        args.docs = str(DEFAULT_DOCS)
    if min(args.reps, args.put_reps, args.latency_requests) < 1:
        p.error("--reps, --put-reps and --latency-requests must be at least 1")
    if not args.latency_sizes:
        p.error("--latency-sizes needs at least one size")
    return args


def load_results(path: Path):
    """Results, arguments, command and runtime of a run saved as JSON by this harness."""
    d = json.loads(path.read_text())
    res = Results(raw=d["raw"], facts=d["facts"])
    for r in d["rows"]:
        res.rows.append(Row(r["metric"], r["unit"], r["higher_is_better"], r["quiver"],
                            r["baseline"],
                            tuple(r["quiver_spread"]) if r.get("quiver_spread") else None,
                            tuple(r["baseline_spread"]) if r.get("baseline_spread") else None,
                            diag=r.get("diagnostic", False)))
    args = argparse.Namespace(**d["args"])
    args.max_noise = getattr(args, "max_noise", 0.25)
    return res, args, d["command"], d["runtime_s"]


def render(path: Path, docs: str | None) -> int:
    """Rewrite the docs section from a saved run (e.g. after improving the wording)."""
    res, args, command, runtime = load_results(path)
    print(text_table([r for r in res.rows if not r.diag]))
    runs, hist = run_history(res, args, path)
    if runs >= 3:
        res.facts["history_runs"], res.facts["history"] = runs, hist
    if docs:
        write_docs(Path(docs), docs_section(res, args, command, runtime), BEGIN_MARK, END_MARK)
        print(f"wrote the flight-bench section of {docs} from {path}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.render:
        return render(Path(args.render), args.docs)
    command = os.environ.get("QUIVER_BENCH_COMMAND") or shlex.join(
        ["bench/flight_bench.py", *argv])
    if args.wait_idle > 0:
        wait_for_idle(args.wait_idle)
    start = time.perf_counter()
    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"note: 1-minute load average is {load:.2f}; other work on this machine will "
            f"add noise")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    busy0, own0, steal0 = machine_busy_seconds(), own_cpu_seconds(), machine_steal_seconds()
    res = run(args)
    runtime = time.perf_counter() - start - WAITED["wall"]
    other = max(0.0, (machine_busy_seconds() - busy0 - WAITED["busy"])
                - (own_cpu_seconds() - own0 - WAITED["own"]))
    res.facts["other_cpu_seconds"] = other
    res.facts["other_cpu_share"] = other / max(1e-9, runtime) / (
        os.cpu_count() or 1)
    res.facts["waited_for_idle_seconds"] = WAITED["wall"]
    res.facts["steal_share"] = (machine_steal_seconds() - steal0 - WAITED["steal"]) / runtime / (
        os.cpu_count() or 1)

    print()
    print(f"Quiver vs. in-memory pyarrow Flight server ({runtime:.0f} s, plus "
          f"{WAITED['wall']:.0f} s waiting for idle; medians; GB = 1e9 "
          f"bytes of table nbytes)")
    print(text_table([r for r in res.rows if not r.diag]))
    print("\nWhere the CPU goes (user+system CPU seconds from /proc, 10 ms resolution):")
    print(text_table([r for r in res.rows if r.diag]))
    qf = res.facts.get("quiver_big_file", {})
    print(f"\nQuiver's file for the large table was "
          f"{qf.get('resident_before_gets', float('nan')):.0%} in the page cache before the "
          f"warm gets: 'from disk' means from a memory-mapped file in the OS page cache. "
          f"The cold row evicts it first (posix_fadvise DONTNEED).")

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = Path(args.json) if args.json else RESULTS_DIR / f"flight-bench-{stamp}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({
        "command": command, "runtime_s": runtime, "args": {
            k: v for k, v in vars(args).items()}, "facts": res.facts, "raw": res.raw,
        "rows": [{"metric": r.metric, "unit": r.unit, "higher_is_better": r.higher_is_better,
                  "quiver": r.quiver, "baseline": r.baseline, "ratio": r.ratio,
                  "quiver_spread": r.q_spread, "baseline_spread": r.b_spread,
                  "diagnostic": r.diag}
                 for r in res.rows]}, indent=2, default=str))
    print(f"Other CPU use on the machine during the run (not the harness or its servers, "
          f"including kernel interrupt time not charged to a process): {other:.1f} CPU-s, "
          f"{res.facts['other_cpu_share']:.0%} of the machine (hypervisor steal "
          f"{res.facts['steal_share']:.0%})"
          + ("  <-- noisy run; consider --wait-idle" if res.facts["other_cpu_share"] > 0.1
             else ""))
    print(f"raw results: {json_path.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path}")
    runs, hist = run_history(res, args, json_path)
    if runs >= 3:
        res.facts["history_runs"], res.facts["history"] = runs, hist
        print(f"\nRatio Quiver/baseline over {runs} runs with these sizes on this machine "
              f"(min – median – max):")
        print("\n".join(history_lines(runs, hist)))
    if args.docs:
        write_docs(Path(args.docs), docs_section(res, args, command, runtime),
                   BEGIN_MARK, END_MARK)
        print(f"wrote the flight-bench section of {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
