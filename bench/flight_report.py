"""The flight-bench section of docs/benchmarks.md: bench/flight_bench.py's write-up.

docs_section renders a run's results (setup, machine, tables, spread, history across runs)
between BEGIN_MARK and END_MARK; analysis words the discussion from the run's figures;
run_history finds earlier runs with the same sizes on the same kind of machine.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import bench_docs
from bench_docs import (Results, fmt_ratio, fmt_value, history_lines,
                        markdown_table, spread_lines)
from bench_env import ROOT, median

RESULTS_DIR = ROOT / "bench" / "results"
BEGIN_MARK = "<!-- flight-bench:begin -->"
END_MARK = "<!-- flight-bench:end -->"


def analysis(res: Results, args) -> str:
    """Analysis text, worded from this run's figures (the mechanisms are fixed facts)."""
    rows, raw = res.rows, res.raw
    big_get, small_get = rows[0], rows[1]
    lat_rows = [r for r in rows if r.metric.startswith("DoGet") and ", p" in r.metric]
    puts = [r for r in rows if r.metric.startswith("DoPut")]
    cold = next((r for r in rows if "evicted from the page cache" in r.metric), None)
    srv = {r.metric: r for r in rows if r.diag}
    cores = res.facts["machine"]["cores"]
    resident = res.facts.get("quiver_big_file", {}).get("resident_before_gets", float("nan"))

    def diag(prefix, dataset):
        return srv.get(f"{prefix}, {res.facts['datasets'][dataset]['label']}")

    def busy(kind, server, dataset):
        """Median CPU time / wall time of one process over the timed gets."""
        cpu = raw[f"get_{kind}_cpu_seconds"][server][dataset]
        wall = raw["get_seconds"][server][dataset]
        return median([c / w for c, w in zip(cpu, wall)])

    def history_sentence(metric):
        v = res.facts.get("history", {}).get(metric)
        if not v or len(v) < 3:
            return ""
        med = median(v)
        where = ("Quiver ahead" if med >= 1.05 else "Quiver behind" if med < 0.95 else
                 "the two on par")
        return (f"Across the {len(v)} runs listed above the ratio's median is {med:.2f} "
                f"(range {min(v):.2f}–{max(v):.2f}), which puts {where}. ")

    def verdict(r):
        x = r.ratio
        if x is None:
            return "could not be compared"
        if x >= 1.05:
            return f"is faster than the baseline ({x:.2f}×)"
        if x >= 0.95:
            return f"is on par with the baseline ({x:.2f}×, within noise)"
        return f"is slower than the baseline ({x:.2f}×)"

    def cpu_cmp(r):
        return (f"{fmt_value(r.quiver, r.unit)} CPU-s/GB for Quiver vs. "
                f"{fmt_value(r.baseline, r.unit)} for the baseline "
                f"(ratio {fmt_ratio(r.ratio)})") if r else "not measured"

    paras = []
    r = big_get.ratio
    goal = ("not measured" if r is None else "met" if r >= 1.05 else
            "met, but only within noise" if r >= 1.0 else
            "missed, but only within noise" if r >= 0.95 else "not met")
    client_busy = busy("client", "quiver", "big")
    srv_busy_q, srv_busy_b = busy("server", "quiver", "big"), busy("server", "baseline", "big")
    paras.append(
        f"**Large gets.** Serving the {big_get.metric[6:]} from its stored file, Quiver "
        f"{verdict(big_get)}: the goal (ratio ≥ 1.0) is {goal} in this run. "
        + history_sentence(big_get.metric)
        + f"\"From disk\" here means from a memory-mapped file in the OS page "
        f"cache ({resident:.0%} of its pages were resident before the gets, because the put "
        f"had just written it), not from the device; the row with the file evicted shows "
        f"the other case. Quiver sends each stored IPC message as a Flight payload whose "
        f"body is a zero-copy slice of the mapping, without decoding or re-encoding. The "
        f"baseline re-encodes its table on every request, but for these column types that "
        f"re-encode is also zero-copy: it builds a small flatbuffer header per batch and "
        f"points at the buffers it already holds. Neither server copies payload bytes in "
        f"user space; a perf profile taken while writing this harness showed both spending "
        f"about two thirds of their CPU in the kernel copying the bytes into the loopback "
        f"socket. What differs is small: Quiver maps the file anew for every DoGet, so the "
        f"kernel takes minor page faults as it reads through the mapping (perf stat: about "
        f"4 per MiB served, a few percent of the server's CPU), and the baseline builds IPC "
        f"headers and makes one trip through Python per request. During a large get the client process was busy {client_busy:.0%} of the "
        f"wall time (CPU time over wall time, its gRPC threads included), Quiver's process "
        f"{srv_busy_q:.0%} and the baseline's {srv_busy_b:.0%}. "
        + ("The bottleneck is therefore the client; the same profile put its time into "
           "page faults on freshly allocated buffers, the copy out of the socket and the "
           "copy of gRPC's slices into contiguous Arrow buffers. "
           if client_busy >= 0.8 else
           "No process was busy most of the time, so the gets were mostly waiting, most "
           "likely for CPU taken by other work on the machine (see the noise figure "
           "above). ")
        + f"With {cores} cores shared by client and server, the GB/s ratio says how fast "
        f"one pyarrow client drains either server (and carries the client's noise); the "
        f"direct comparison of the servers is their CPU per GB served: "
        f"{cpu_cmp(diag('Server CPU per GB served by DoGet', 'big'))}.")
    paras.append(
        f"**Many small batches.** With the {small_get.metric[6:]}, Quiver "
        f"{verdict(small_get)}. Per batch, Quiver reads the next IPC message header from "
        f"the mapping and wraps it as a payload, where the baseline builds the header from "
        f"the batch in memory; both are cheap next to the per-message gRPC and HTTP/2 work, "
        f"which is the same for the two servers and makes each GB cost more CPU than with "
        f"large batches: {cpu_cmp(diag('Server CPU per GB served by DoGet', 'small'))}.")
    if lat_rows:
        desc = "; ".join(f"{r.metric[6:]}: {fmt_value(r.quiver, r.unit)} µs vs. "
                         f"{fmt_value(r.baseline, r.unit)} µs ({fmt_ratio(r.ratio)}×)"
                         for r in lat_rows)
        p50s = [r for r in lat_rows if r.metric.endswith("p50")]
        worse = [r for r in p50s if r.ratio is not None and r.ratio > 1.05]
        better = [r for r in p50s if r.ratio is not None and r.ratio < 0.95]
        cpu_req = next((r for r in rows if r.metric.startswith("Server CPU per DoGet request")),
                       None)
        if worse:
            summary = ("Quiver is slower at the median for the "
                       + " and the ".join(r.metric[6:].rsplit(",", 1)[0] for r in worse)
                       + ".")
        elif better:
            summary = ("Quiver is a little faster at the median for the "
                       + " and the ".join(r.metric[6:].rsplit(",", 1)[0] for r in better)
                       + (" and on par otherwise." if len(better) < len(p50s) else "."))
        else:
            summary = "The medians are on par (within 5%)."
        paras.append(
            f"**Small objects** (Quiver vs. baseline — {desc}). {summary} A request of this "
            f"size is almost all fixed cost: the gRPC round trip over loopback, stream setup "
            f"and teardown on both sides, and the client building a table. The servers' own "
            f"work differs: Quiver looks the key up in its index, stat()s and memory-maps the "
            f"stored file, decodes the schema message, and unmaps the file when the stream "
            f"ends; the baseline's do_get takes the GIL to run a few lines of Python and "
            f"hands back a table already in memory. "
            + ("" if not (cpu_req and cpu_req.ratio) else
               f"Quiver's extra file work shows in its server CPU per request "
               f"({fmt_value(cpu_req.quiver, cpu_req.unit)} µs vs. "
               f"{fmt_value(cpu_req.baseline, cpu_req.unit)} µs for the first object). "
               if cpu_req.ratio > 1.1 else
               f"Quiver's server CPU per request is lower "
               f"({fmt_value(cpu_req.quiver, cpu_req.unit)} µs vs. "
               f"{fmt_value(cpu_req.baseline, cpu_req.unit)} µs for the first object): its "
               f"file work costs less than the baseline's trip through Python. "
               if cpu_req.ratio < 0.9 else
               f"Measured as server CPU per request the two come out at similar cost "
               f"({fmt_value(cpu_req.quiver, cpu_req.unit)} µs vs. "
               f"{fmt_value(cpu_req.baseline, cpu_req.unit)} µs for the first object; "
               f"this includes gRPC's own work). ")
            + f"The p99 figures on a {cores}-core VM are dominated by scheduling noise.")
    if puts:
        desc = "; ".join(f"{r.metric[6:]}: Quiver {fmt_value(r.quiver, r.unit)} GB/s vs. "
                         f"baseline {fmt_value(r.baseline, r.unit)} GB/s "
                         f"({fmt_ratio(r.ratio)}×)" for r in puts)
        put_big = puts[0]
        cpu_put = diag("Server CPU per GB stored by DoPut", "big")
        cpu_note = ""
        if cpu_put and put_big.quiver and put_big.quiver == put_big.quiver:
            wall_per_gb = 1 / put_big.quiver
            share = cpu_put.quiver / wall_per_gb
            cpu_note = (
                f" Quiver's process used {fmt_value(cpu_put.quiver, cpu_put.unit)} CPU-s per "
                f"GB stored against {wall_per_gb:.2f} s of wall time per GB (the baseline "
                f"{fmt_value(cpu_put.baseline, cpu_put.unit)} CPU-s), so "
                + ("the put is mostly CPU-bound in the server rather than waiting for the "
                   "disk. A perf profile taken while writing this harness put Quiver's extra "
                   "CPU, beyond the receive path both servers share, into copying the "
                   "stream into the page cache with write() (about a fifth of its CPU), "
                   "full validation (about a sixth, mostly checking that every string is "
                   "UTF-8) and the checksum (under a tenth); the fsync itself costs little "
                   "CPU."
                   if share >= 0.6 else
                   "much of Quiver's put time is spent waiting for the disk to absorb and "
                   "flush the data rather than computing."))
        paras.append(
            f"**DoPut** ({desc}). Quiver is slower here, and the comparison is not like for "
            f"like: the baseline keeps the received batches in RAM and is done, while Quiver "
            f"fully validates every batch (`ValidateFull`, including UTF-8 checks of every "
            f"string), writes it as an IPC stream into a temporary file while checksumming "
            f"it (XXH3), fsyncs the file and its directory, renames it into place and "
            f"publishes a manifest, so a put that returns is durable and survives a "
            f"restart.{cpu_note}")
    if cold:
        cold_res = res.facts.get("cold_resident_before_get") or [float("nan")]
        paras.append(
            f"**Not in the page cache.** With the file evicted before each get "
            f"(posix_fadvise DONTNEED; {max(cold_res):.0%} of it still resident according to "
            f"mincore), Quiver delivered {fmt_value(cold.quiver, 'GB/s')} GB/s, "
            f"{fmt_ratio(cold.ratio)}× the baseline serving from RAM: the pages now come from "
            f"the block device through page faults on the mapping, with the kernel's "
            f"readahead. This VM's virtual disk may itself be cached by the host, so treat "
            f"this as an optimistic figure for a truly cold read.")
    return "\n\n".join(paras)


def run_history(res: Results, args, this_json: Path) -> tuple[int, dict]:
    """Ratios of this run and of earlier runs in bench/results/ with the same sizes on the
    same kind of machine: (number of runs, {metric: [ratio, ...]})."""
    sizes = (args.big, args.big_batch, args.small, args.small_batch)
    machine = (res.facts["machine"]["cpu"], res.facts["machine"]["cores"])

    def same_setup(d) -> bool:
        a, m = d["args"], d["facts"]["machine"]
        return ((a["big"], a["big_batch"], a["small"], a["small_batch"]) == sizes
                and (m["cpu"], m["cores"]) == machine)

    return bench_docs.run_history(res.rows, this_json, RESULTS_DIR, "flight-bench-*.json",
                                  same_setup)


def docs_section(res: Results, args, command: str, runtime_s: float) -> str:
    m = res.facts["machine"]
    ds = res.facts["datasets"]
    lines = [
        BEGIN_MARK,
        "## Flight: Quiver vs. an in-memory pyarrow Flight server",
        "",
        "_Written by `bench/flight_bench.py`; do not edit by hand between the markers._",
        "",
        f"* Date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"* Command: `{command}` (the run took {runtime_s:.0f} s"
        + (f", plus {res.facts['waited_for_idle_seconds']:.0f} s waiting for other work on "
           f"the machine to finish)" if res.facts.get("waited_for_idle_seconds", 0) >= 1
           else ")"),
        f"* Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, kernel {m['kernel']} "
        f"({m['os']}); load average at start {m['loadavg_start']}, at end "
        f"{m.get('loadavg_end', '?')}; CPU used by other work during the run "
        f"{res.facts.get('other_cpu_share', float('nan')):.0%} of the machine, hypervisor "
        f"steal {res.facts.get('steal_share', float('nan')):.0%}",
        f"* Software: Python {m['python']}, pyarrow {m['pyarrow']}, numpy {m['numpy']}; "
        f"{res.facts.get('quiver_version', 'quiver')} at commit {m['quiver_commit']}",
        f"* Quiver's data dir: {m['data_dir_fs']}",
        "",
        *([f"**Noisy run:** other work used {res.facts['other_cpu_share']:.0%} of the "
           f"machine's CPU while this ran, so the figures below are less reliable than "
           f"usual; rerun on a quiet machine (`--wait-idle`) before drawing conclusions.",
           ""] if res.facts.get("other_cpu_share", 0) > 0.10 else []),
        "Setup: both servers run on this machine, each in its own process, and one Python "
        "client (`pyarrow.flight`, one connection per server, default options, no "
        "compression) drives both with the same code over loopback gRPC. The baseline is "
        "`bench/baseline_server.py`, a `FlightServerBase` that keeps each put's "
        "`read_all()` table in a dict and answers DoGet with `RecordBatchStream(table)`. "
        "Quiver is `quiver serve` on a fresh data dir. Data: columns id/key int64, x/y "
        "float64 (numpy random, fixed seed) and s string (random 4-28 letters); "
        "datasets:",
        "",
    ]
    for name, d in ds.items():
        lines.append(f"  * `{name}`: {d['label']} — {d['rows']:,} rows, {d['batches']:,} "
                     f"batch{'es' if d['batches'] != 1 else ''}, {d['nbytes']:,} bytes (nbytes), {d['ipc_bytes']:,} bytes as "
                     f"an IPC stream")
    qf = res.facts.get("quiver_big_file", {})
    disc = {k: v for k, v in res.facts.get("discarded_for_noise", {}).items() if v}
    tos = res.facts.get("timed_other_share", {})
    noise_text = (
        (f"This run discarded {', '.join(f'{v} in {k}' for k, v in disc.items())}. "
         if disc else "This run discarded none. ")
        + (f"Across the kept throughput repetitions other work used a median "
           f"{tos['median']:.0%} of the machine (max {tos['max']:.0%})."
           if tos else ""))
    lines += [
        "",
        f"Gets consume the whole stream (`reader.read_all()`) and check the row count; "
        f"GB/s is the table's nbytes per second of wall time from the DoGet call to the "
        f"last batch (the IPC stream on the wire is larger by "
        f"{(ds['big']['ipc_bytes'] / ds['big']['nbytes'] - 1) * 100:.2f}% for `big` and "
        f"{(ds['small']['ipc_bytes'] / ds['small']['nbytes'] - 1) * 100:.2f}% for `small`: "
        f"message headers and padding). Large and small-batch gets: "
        f"median of {args.reps} repetitions per server after one warm-up get each, "
        f"alternating servers. Puts: median of {args.put_reps} repetitions, timed from the "
        f"DoPut call until the server's metadata reply. Latency: {args.latency_requests} "
        f"sequential DoGets per object and server after 50 warm-up requests, in blocks of "
        f"50 alternating between servers. Before the gets, every stored table was read "
        f"back from both servers and compared with the original. Quiver's file for the "
        f"large table was {qf.get('resident_before_gets', float('nan')):.0%} resident in "
        f"the page cache before the warm gets (mincore). Server CPU is user+system time of "
        f"the server process from /proc (10 ms resolution) over the timed requests. "
        f"Interference check: a throughput or put repetition (both servers' turns) during "
        f"which other work used more than {args.max_noise:.0%} of the machine's CPU "
        f"(/proc/stat busy time, hypervisor steal included, minus the client's and the "
        f"server's own) is discarded and run again, at most as many times as the phase has "
        f"repetitions; latency blocks are too short for /proc/stat's 10 ms ticks and are "
        f"not checked. {noise_text}",
        "",
        markdown_table([r for r in res.rows if not r.diag]),
        "",
        "Spread (min–max over repetitions):",
        "",
        *spread_lines([r for r in res.rows if not r.diag]),
        "",
        *([f"Ratio Quiver/baseline across the {res.facts['history_runs']} runs with "
           f"these sizes on this machine, this one included (min – median – max; raw "
           f"results in `bench/results/`, not committed; earlier runs may have used earlier "
           f"builds of Quiver and of this harness). Single runs on a shared VM vary from run "
           f"to run, so the medians are the better guide:",
           "",
           *history_lines(res.facts["history_runs"], res.facts["history"]),
           ""] if res.facts.get("history_runs", 0) >= 3 else []),
        "Where the CPU goes (medians; user+system CPU of the server process and of the "
        "client process, which includes its gRPC threads):",
        "",
        markdown_table([r for r in res.rows if r.diag]),
        "",
        "### Analysis",
        "",
        analysis(res, args),
        END_MARK,
    ]
    return "\n".join(lines) + "\n"
