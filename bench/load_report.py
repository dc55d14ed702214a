"""The load-bench section of docs/benchmarks.md: bench/load_bench.py's write-up.

summarize turns a run's raw figures into bench_docs Rows (Quiver vs. the in-memory pyarrow
server); limits gives the machine's own figures measured in the same run (loopback TCP by
iperf3, the disk's write bandwidth by dd); goals checks the issue's targets against them;
docs_section renders the section between BEGIN_MARK and END_MARK, which write_section places
after the flight-bench section the first time (under a heading of its own).
"""
from __future__ import annotations

from pathlib import Path

from bench_docs import (Row, history_lines, markdown_table, spread_lines, text_table,
                        write_docs)
from bench_env import WAITED, median, spread

BEGIN_MARK = "<!-- load-bench:begin -->"
END_MARK = "<!-- load-bench:end -->"
HEADING = "## Large gets and puts: the C++ load client, loopback TCP and the disk"
AFTER_MARK = "<!-- flight-bench:end -->"

GET_GOAL = 1.0        # Python-client DoGet, Quiver/baseline, in every repetition
LOOPBACK_GOAL = 0.6   # C++-client DoGet with 4 streams, share of loopback TCP (iperf3)
PUT_GOAL = 0.8        # Python-client DoPut, Quiver/baseline, median


def _gbps(items, nbytes=None):
    return [(nbytes if nbytes is not None else x["bytes"]) / x["seconds"] / 1e9 for x in items]


def _streams(n: int) -> str:
    return f"{n} stream" + ("s" if n != 1 else "")


def summarize(res: dict, args) -> list[Row]:
    raw, f = res["raw"], res["facts"]
    label, nbytes = f["dataset"]["label"], f["dataset"]["nbytes"]
    rows = []

    def add(metric, q, b, unit="GB/s", higher=True, diag=False):
        rows.append(Row(metric, unit, higher, median(q), median(b), spread(q), spread(b),
                        diag=diag))

    for n, per in raw["get_cpp"].items():
        add(f"DoGet {label}, C++ client, {_streams(int(n))}", _gbps(per["quiver"]),
            _gbps(per["baseline"]))
    py = raw["get_python"]
    add(f"DoGet {label}, Python client", _gbps(py["quiver"], nbytes),
        _gbps(py["baseline"], nbytes))
    put = raw["put_python"]
    add(f"DoPut {label}, Python client", _gbps(put["quiver"], nbytes),
        _gbps(put["baseline"], nbytes))
    if raw.get("put_cpp"):
        add(f"DoPut {label}, C++ client, 1 stream", _gbps(raw["put_cpp"]["quiver"]),
            _gbps(raw["put_cpp"]["baseline"]))

    def per_gb(items, what, fixed=None):
        return [x[what] / ((fixed if fixed is not None else x["bytes"]) / 1e9) for x in items]

    for what, side in (("server_cpu_s", "Server"), ("client_cpu_s", "Client")):
        for n, per in raw["get_cpp"].items():
            add(f"{side} CPU per GB, DoGet, C++ client, {_streams(int(n))}",
                per_gb(per["quiver"], what), per_gb(per["baseline"], what), "CPU-s/GB",
                False, True)
        add(f"{side} CPU per GB, DoGet, Python client", per_gb(py["quiver"], what, nbytes),
            per_gb(py["baseline"], what, nbytes), "CPU-s/GB", False, True)
        add(f"{side} CPU per GB, DoPut, Python client", per_gb(put["quiver"], what, nbytes),
            per_gb(put["baseline"], what, nbytes), "CPU-s/GB", False, True)
    return rows


def limits(res: dict) -> dict:
    """The machine's own figures: {"iperf3": {streams: GB/s median} or None, "dd": GB/s}."""
    raw = res["raw"]
    tcp = raw.get("iperf3_bytes_per_s")
    return {
        "iperf3": None if tcp is None else {int(n): median(v) / 1e9 for n, v in tcp.items()},
        "iperf3_spread": None if tcp is None else {int(n): (min(v) / 1e9, max(v) / 1e9)
                                                   for n, v in tcp.items()},
        "dd": median([x["bytes"] / x["seconds"] / 1e9 for x in raw["dd"]]),
    }


def python_get_ratios(res: dict) -> list[float]:
    """Quiver/baseline throughput of each Python-client repetition (both servers' turns of
    one repetition are back to back)."""
    py = res["raw"]["get_python"]
    return [b["seconds"] / q["seconds"] for q, b in zip(py["quiver"], py["baseline"])]


def goals(res: dict, rows: list[Row]) -> list[tuple[str, bool | None, str]]:
    """(goal, met?, the figures) for each of the issue's targets."""
    by = {r.metric: r for r in rows}
    label = res["facts"]["dataset"]["label"]
    lim = limits(res)
    out = []
    ratios = python_get_ratios(res)
    out.append((f"DoGet, Python client: Quiver ≥ {GET_GOAL:.1f}× the baseline in every "
                f"repetition", min(ratios) >= GET_GOAL,
                f"ratios {', '.join(f'{r:.2f}' for r in ratios)} (min {min(ratios):.2f}, "
                f"median {median(ratios):.2f})"))
    cpp = {int(n): by[f"DoGet {label}, C++ client, {_streams(int(n))}"]
           for n in res["raw"]["get_cpp"]}
    most = max(cpp)
    if lim["iperf3"] is None or most not in lim["iperf3"]:
        out.append((f"DoGet, C++ client, {_streams(most)}: ≥ {LOOPBACK_GOAL:.0%} of loopback "
                    "TCP", None, "not measured: iperf3 is not installed"))
    else:
        share = cpp[most].quiver / lim["iperf3"][most]
        out.append((f"DoGet, C++ client, {_streams(most)}: Quiver ≥ {LOOPBACK_GOAL:.0%} of "
                    f"loopback TCP (iperf3, {_streams(most)})", share >= LOOPBACK_GOAL,
                    f"{cpp[most].quiver:.2f} GB/s of {lim['iperf3'][most]:.2f} GB/s = "
                    f"{share:.0%}"))
    put = by[f"DoPut {label}, Python client"]
    out.append((f"DoPut, Python client: Quiver ≥ {PUT_GOAL:.1f}× the baseline (median)",
                put.ratio >= PUT_GOAL,
                f"{put.quiver:.2f} vs. {put.baseline:.2f} GB/s = {put.ratio:.2f}×; the disk "
                f"alone (dd, fdatasync) writes {lim['dd']:.2f} GB/s, so a durable put of this "
                f"size can reach at most {min(1.0, lim['dd'] / put.baseline):.2f}× the baseline"))
    return out


def limit_lines(res: dict) -> list[str]:
    lim = limits(res)
    out = []
    if lim["iperf3"] is None:
        out.append("* Loopback TCP: not measured (iperf3 is not installed)")
    else:
        for n, v in sorted(lim["iperf3"].items()):
            lo, hi = lim["iperf3_spread"][n]
            out.append(f"* Loopback TCP, iperf3, {_streams(n)}: {v:.2f} GB/s (runs "
                       f"{lo:.2f}–{hi:.2f})")
    out.append(f"* Disk sequential write, dd bs=64M conv=fdatasync into the data dir: "
               f"{lim['dd']:.2f} GB/s")
    return out


def analysis(res: dict, rows: list[Row]) -> str:
    f, raw = res["facts"], res["raw"]
    label = f["dataset"]["label"]
    by = {r.metric: r for r in rows}
    parts = []
    streams = sorted(int(n) for n in raw["get_cpp"])
    for n in streams:
        per = raw["get_cpp"][str(n)]
        busy = {s: median([x["server_cpu_s"] / x["seconds"] for x in per[s]]) for s in per}
        client = median([x["client_cpu_s"] / x["seconds"] for x in per["quiver"]])
        r = by[f"DoGet {label}, C++ client, {_streams(n)}"]
        parts.append(f"With the C++ client and {_streams(n)}, Quiver served {r.quiver:.2f} GB/s "
                     f"and the baseline {r.baseline:.2f} GB/s ({r.ratio:.2f}×); Quiver's "
                     f"process was busy {busy['quiver']:.0%} of the wall time (the baseline's "
                     f"{busy['baseline']:.0%}), the client {client:.0%}.")
    py = by[f"DoGet {label}, Python client"]
    cpp1 = by.get(f"DoGet {label}, C++ client, 1 stream")
    if cpp1 is not None:
        parts.append(f"The Python client drew {py.quiver:.2f} GB/s from Quiver where the C++ "
                     f"client drew {cpp1.quiver:.2f} GB/s on one stream: the Python figures "
                     "measure the client as much as the server.")
    return " ".join(parts)


def docs_section(res: dict, rows, args, command: str, runtime: float) -> str:
    f = res["facts"]
    m = f["machine"]
    d = f["dataset"]
    main = [r for r in rows if not r.diag]
    lines = [
        BEGIN_MARK,
        "",
        f"_Written by `bench/load_bench.py` ({f['date_utc']}; run time {runtime:.0f} s"
        + (f", {WAITED['wall']:.0f} s of it waiting for idle" if WAITED["wall"] >= 1 else "")
        + f"); do not edit by hand between the markers._ Command: `{command}`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, {m['os']}, kernel "
        f"{m['kernel']}; data dir on {m['data_dir_fs']}. Quiver {m['quiver_commit']} (binary "
        f"sha256 {f['quiver_binary']['sha256']}), pyarrow {m['pyarrow']}, Python {m['python']}"
        + (f", {f['iperf3']}" if f.get("iperf3") else "")
        + f". Other work used {f['other_cpu_share']:.0%} of the machine during the run"
        + (" (noisy: treat the figures with care)" if f["other_cpu_share"] > 0.1 else "") + ".",
        "",
        "Setup: Quiver (`quiver serve`, fresh data dir, default durability"
        + (": `process`, a put is acknowledged once its data is in the page cache and the data "
           "dir is flushed every second" if f.get("has_durability") else
           ": each put is fsynced before it is acknowledged")
        + ") and the in-memory pyarrow server "
        f"(`bench/baseline_server.py`) on loopback; one table of {d['label']} "
        f"({d['rows']:,} rows, {d['nbytes']:,} bytes nbytes, {d['ipc_bytes']:,} bytes as an "
        f"IPC stream). The C++ client is `bench/flight_load.cc` (Arrow Flight C++ from the "
        f"pyarrow wheel): N parallel DoGets of the same key, each on its own connection, "
        f"counting each batch as it arrives; one process per repetition, after one untimed "
        f"get. The Python client is `pyarrow.flight` with `read_all()`. GB/s is 10^9 bytes of "
        f"table nbytes per second (with N streams, N times the table). Servers alternate "
        f"turn by turn; a repetition during which other work used more than "
        f"{args.max_noise:.0%} of the machine (task time from /proc/stat: irq and softirq "
        f"time, where the kernel's loopback TCP runs, is left out) is run again (discarded: "
        f"{sum(f.get('discarded_for_noise', {}).values())}). Medians of "
        f"{args.reps} (C++ gets), {args.py_reps} (Python gets), {args.put_reps} (Python puts) "
        f"repetitions per server. Quiver's file was "
        f"{f['quiver_file']['resident_before_gets']:.0%} in the page cache before the gets.",
        "",
        "The machine's own limits, measured in the same run:",
        "",
        *limit_lines(res),
        "",
        markdown_table(main),
        "",
        "Spread (min–max over repetitions):",
        "",
        *spread_lines(main),
        "",
        "Goals:",
        "",
        *[f"* {g}: **{'met' if ok else 'not met' if ok is not None else 'not measured'}** — "
          f"{why}" for g, ok, why in goals(res, rows)],
        "",
    ]
    if f.get("history_runs", 0) >= 3:
        lines += [f"Ratio Quiver/baseline over the {f['history_runs']} runs with these sizes in "
                  "`bench/results/` (min – median – max):", "",
                  *history_lines(f["history_runs"], f["history"]), ""]
    lines += [
        "Where the CPU goes (user+system CPU seconds per GB, from /proc and getrusage; a C++ "
        "client process makes one untimed and one timed get, and half of the server's CPU "
        "over the process is counted):",
        "",
        markdown_table([r for r in rows if r.diag]),
        "",
        analysis(res, rows),
        END_MARK,
        "",
    ]
    return "\n".join(lines)


def print_summary(res: dict, rows, args, runtime: float) -> None:
    print()
    print(f"Large gets and puts ({runtime:.0f} s"
          + (f", {WAITED['wall']:.0f} s of it waiting for idle" if WAITED["wall"] >= 1 else "")
          + "; medians)")
    print("\n".join(limit_lines(res)))
    print()
    print(text_table([r for r in rows if not r.diag]))
    print()
    print(text_table([r for r in rows if r.diag]))
    print()
    for g, ok, why in goals(res, rows):
        print(f"{'MET' if ok else 'NOT MET' if ok is not None else 'SKIPPED'}: {g} -- {why}")
    print()
    print(analysis(res, rows))
    print(f"\nOther CPU use on the machine during the run: "
          f"{res['facts']['other_cpu_share']:.0%} of the machine"
          + ("  <-- noisy run; consider --wait-idle" if res["facts"]["other_cpu_share"] > 0.1
             else ""))


def write_section(docs: Path, section: str) -> None:
    """Rewrite the section between the markers; the first time, put it (after its heading)
    right after the flight-bench section, else at the end."""
    text = docs.read_text() if docs.exists() else ""
    if (BEGIN_MARK in text and END_MARK in text) or AFTER_MARK not in text:
        write_docs(docs, section if BEGIN_MARK in text else f"{HEADING}\n\n{section}",
                   BEGIN_MARK, END_MARK, intro="# Benchmarks\n", tmp_suffix=".load-bench.tmp")
        return
    before, after = text.split(AFTER_MARK, 1)
    text = before + AFTER_MARK + f"\n\n{HEADING}\n\n" + section.rstrip("\n") + "\n" + after
    tmp = docs.with_name(docs.name + ".load-bench.tmp")
    tmp.write_text(text)
    tmp.replace(docs)


def same_setup(args):
    keys = ("size", "batch", "streams", "quick")
    return lambda d: all(d["args"][k] == getattr(args, k) for k in keys)
