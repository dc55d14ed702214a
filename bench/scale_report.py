"""The scale-bench section of docs/benchmarks.md: bench/scale_bench.py's write-up.

summarize turns a run's raw figures into bench_docs.GoalRow rows judged against the issue's
goals for one node at 1M entries (restart until listening <= 3 s, index memory <= 300 bytes
per entry, get p99 <= 1 ms); detail_lines gives each start, the fill, the stats action's
`recovery` and `durability` objects and the data dir's size; analysis words the discussion
from the figures; docs_section renders the whole section between BEGIN_MARK and END_MARK,
which write_section places at the end of the file under HEADING the first time.
"""
from __future__ import annotations

import json
from pathlib import Path

from bench_docs import (GOAL_COLUMNS, GoalRow, header_lines, markdown_table, noise_note,
                        spread_lines, print_goal_summary, write_headed_section)
from bench_env import fmt_size, median, percentile, spread

BEGIN_MARK = "<!-- scale-bench:begin -->"
END_MARK = "<!-- scale-bench:end -->"
HEADING = "## One node at scale"

# No baseline is measured beside these figures: the table shows value, goal and verdict.
COLUMNS = (GOAL_COLUMNS[0], GOAL_COLUMNS[1], GOAL_COLUMNS[5], GOAL_COLUMNS[6])
GOAL_ENTRIES = 1_000_000
GOAL_LISTEN_S = 3.0
GOAL_BYTES_PER_ENTRY = 300.0
GOAL_GET_P99_MS = 1.0
# The figures measured before this harness existed (100k entries of 3-row tables).
BEFORE = "100,000 entries of 3-row tables: 7.6 s to restart, 276 MiB RSS, get p50/p99 0.50/0.91 ms"


def at_scale(n: int) -> str:
    return "" if n >= GOAL_ENTRIES else f" (goal at {GOAL_ENTRIES / 1e6:g} M; run at {n:,})"


def index_bytes_per_entry(raw: dict, start: dict) -> float:
    return (start["memory"]["VmRSS"] - raw["empty"]["memory"]["VmRSS"]) * 1024 / start["entries"]


def summarize(res: dict, args) -> list[GoalRow]:
    raw = res["raw"]
    n = args.entries
    note = at_scale(n)
    rows = []
    clean = raw["restarts"]
    listen = [r["listening_s"] for r in clean]
    rows.append(GoalRow(f"Restart until listening, clean stop before (median of {len(clean)})",
                        "s", False, median(listen), None, spread(listen), id="listen_clean",
                        goal=GOAL_LISTEN_S, goal_text=f"≤ {GOAL_LISTEN_S:g} s{note}"))
    un = raw["restart_unclean"]
    rows.append(GoalRow("Restart until listening, after SIGKILL", "s", False, un["listening_s"],
                        None, id="listen_unclean", goal=GOAL_LISTEN_S,
                        goal_text=f"≤ {GOAL_LISTEN_S:g} s{note}"))
    hit = [r["first_hit_s"] for r in clean]
    rows.append(GoalRow("Restart until a get of a stored key hits, clean", "s", False,
                        median(hit), None, spread(hit), id="hit_clean"))
    per_entry = [index_bytes_per_entry(raw, r) for r in clean]
    rows.append(GoalRow("Index memory per entry: (RSS after restart − RSS empty) / N", "B",
                        False, median(per_entry), None, spread(per_entry), id="bytes_per_entry",
                        goal=GOAL_BYTES_PER_ENTRY,
                        goal_text=f"≤ {GOAL_BYTES_PER_ENTRY:g} B{note}"))
    one = raw["gets_one"]["latencies_ms"]
    rows.append(GoalRow("Get of a random stored key, one client, p50", "ms", False,
                        percentile(one, 50), None, id="get_p50"))
    rows.append(GoalRow("Get of a random stored key, one client, p99", "ms", False,
                        percentile(one, 99), None, id="get_p99", goal=GOAL_GET_P99_MS,
                        goal_text=f"≤ {GOAL_GET_P99_MS:g} ms{note}"))
    many = raw["gets_many"]["latencies_ms"]
    for p in (50, 99):
        rows.append(GoalRow(f"Get, {args.get_procs} client processes at once, p{p}", "ms", False,
                            percentile(many, p), None, id=f"get_many_p{p}"))
    rows.append(GoalRow(f"Fill rate ({args.fill_procs} processes × {args.fill_threads} "
                        f"threads)", "puts/s", True, raw["fill"]["rate"], None, id="fill_rate"))
    # Diagnostics
    mem = lambda r, f: r["memory"][f] / 1024  # noqa: E731 - MiB
    rows.append(GoalRow("RSS of the empty node", "MiB", False, mem(raw["empty"], "VmRSS"), None,
                        id="rss_empty", diag=True))
    rss = [mem(r, "VmRSS") for r in clean]
    rows.append(GoalRow(f"RSS after a clean restart with {n:,} entries", "MiB", False,
                        median(rss), None, spread(rss), id="rss_restart", diag=True))
    anon = [mem(r, "RssAnon") for r in clean]
    rows.append(GoalRow("RSS after a clean restart, anonymous (heap)", "MiB", False,
                        median(anon), None, id="rss_anon", diag=True))
    hwm = [mem(r, "VmHWM") for r in clean]
    rows.append(GoalRow("Peak RSS during the restart (VmHWM)", "MiB", False, median(hwm), None,
                        id="rss_hwm", diag=True))
    rows.append(GoalRow(f"RSS after the fill (the same process that took the {n:,} puts)",
                        "MiB", False, raw["fill"]["memory_after"]["VmRSS"] / 1024, None,
                        id="rss_fill", diag=True))
    nv = raw.get("restart_no_verify")
    if nv:
        rows.append(GoalRow("Restart until listening, --no-verify-on-startup", "s", False,
                            nv["listening_s"], None, id="listen_no_verify", diag=True))
    cold = raw.get("restart_cold")
    if cold:
        rows.append(GoalRow("Restart until listening, page cache dropped", "s", False,
                            cold["listening_s"], None, id="listen_cold", diag=True))
    stops = [r["stop_before"]["seconds"] for r in clean]
    rows.append(GoalRow("Clean stop (SIGTERM until exit)", "s", False, median(stops), None,
                        spread(stops), id="stop", diag=True))
    f = raw["fill"]
    rows.append(GoalRow("Server CPU per put during the fill", "µs", False,
                        f["server_cpu_s"] / f["entries"] * 1e6, None, id="cpu_put", diag=True))
    g = raw["gets_one"]
    rows.append(GoalRow("Server CPU per get, one client", "µs", False,
                        g["server_cpu_s"] / len(g["latencies_ms"]) * 1e6, None, id="cpu_get",
                        diag=True))
    gm = raw["gets_many"]
    rows.append(GoalRow(f"Gets per second, {args.get_procs} client processes", "req/s", True,
                        gm["rate"], None, id="get_rate", diag=True))
    dd = raw.get("data_dir", {})
    if dd.get("disk_bytes"):
        rows.append(GoalRow("Data dir on disk per entry", "KiB", False,
                            dd["disk_bytes"] / dd["entries"] / 1024, None, id="disk_per_entry",
                            diag=True))
    return rows


# ---------------------------------------------------------------------------------------
# Details and analysis


def start_line(r: dict, n_empty_kib: int) -> str:
    m = r["memory"]
    parts = [f"listening {r['listening_s']:.3f} s"]
    if r.get("first_hit_s") is not None:
        parts.append(f"first hit {r['first_hit_s']:.3f} s")
    parts.append(f"{r['entries']:,} entries at {r['all_entries_s']:.3f} s")
    parts.append(f"RSS {m['VmRSS'] / 1024:.1f} MiB (anonymous {m['RssAnon'] / 1024:.1f}, "
                 f"file {m['RssFile'] / 1024:.1f}, peak {m['VmHWM'] / 1024:.1f})")
    if r["entries"]:
        parts.append(f"{(m['VmRSS'] - n_empty_kib) * 1024 / r['entries']:.0f} B/entry over "
                     f"the empty node")
    stop = r.get("stop_before")
    if stop:
        parts.append(f"after a stop of {stop['seconds']:.3f} s (exit code {stop['exit_code']})")
    text = f"* {r['label']}: " + ", ".join(parts)
    for k, v in r.get("stats", {}).items():
        text += f"; stats `{k}`: `{json.dumps(v, sort_keys=True)}`"
    if r.get("log_recovery"):  # from "recovered ...": the data dir's path is the run's
        line = r["log_recovery"]
        text += f"; log: \"{line[line.find('recovered'):]}\""
    return text


def detail_lines(res: dict, args) -> list[str]:
    raw, f = res["raw"], res["facts"]
    out = []
    fill = raw["fill"]
    out.append(f"* Fill: {fill['entries']:,} puts in {fill['seconds']:.1f} s = "
               f"{fill['rate']:,.0f} puts/s from {args.fill_procs} processes × "
               f"{args.fill_threads} threads (per process: "
               f"{', '.join(f'{x:,}' for x in fill['per_process'])}); server CPU "
               f"{fill['server_cpu_s']:.1f} s; stored {fmt_size(fill.get('bytes') or 0)}")
    empty_kib = raw["empty"]["memory"]["VmRSS"]
    out.append("* Starts (times from starting the process):")
    for r in [raw["empty"], *raw["restarts"], raw.get("restart_no_verify"),
              raw["restart_unclean"], raw.get("restart_cold")]:
        if r:
            out.append("  " + start_line(r, empty_kib))
    un = raw["restart_unclean"]
    lost = un["expected_entries"] - un["entries"]
    out.append(f"* After SIGKILL ({args.extra:,} puts in the {raw['extra_puts']['seconds']:.1f} s "
               f"before it): {un['entries']:,} of {un['expected_entries']:,} entries back"
               + (" — none lost." if lost == 0 else f" — {lost:,} MISSING."))
    if not any(r.get("stats") for r in raw["restarts"]):
        out.append("* The binary's `stats` action has no `recovery` or `durability` object "
                   "(added by later work; printed here when present).")
    dd = raw.get("data_dir", {})
    if dd.get("disk_bytes"):
        out.append(f"* Data dir after the run ({dd['entries']:,} entries): "
                   f"{fmt_size(dd['disk_bytes'])} on disk, {fmt_size(dd['apparent_bytes'])} "
                   f"apparent, {dd['inodes']:,} inodes ({dd['inodes'] / dd['entries']:.1f} per "
                   f"entry)")
    ram = raw.get("memory_after_gets")
    if ram:
        out.append(f"* RSS after the gets: {ram['VmRSS'] / 1024:.1f} MiB (anonymous "
                   f"{ram['RssAnon'] / 1024:.1f}, file-backed {ram['RssFile'] / 1024:.1f})")
    shares = f.get("phase_other_cpu_share", {})
    if shares:
        out.append("* Other work's share of the machine per phase: "
                   + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    return out


def analysis(res: dict, rows, args) -> str:
    by = {r.id: r for r in rows}
    n = args.entries
    t = []
    noise = noise_note(res)
    if noise:
        t.append(noise + "\n\n")
    goals = [r for r in rows if r.goal is not None]
    met = [r for r in goals if r.met]
    t.append(f"**Goals.** At {n:,} entries {len(met)} of {len(goals)} goals are met"
             + (f" (the goals are for {GOAL_ENTRIES:,} entries; this run had "
                f"{n / GOAL_ENTRIES:.0%} of that, so a goal met here may still be missed at "
                f"1 M and the restart and memory figures grow with N)" if n < GOAL_ENTRIES
                else "") + ". "
             + " ".join(f"{r.metric}: {r.fmt(r.judged)} {r.unit} against {r.goal_text} — "
                        + ("met" if r.met else f"not met, {r.judged / r.goal:.2f}× the bound")
                        + "." for r in goals))
    lc = by["listen_clean"]
    per100k = lc.quiver / n * 1e5
    t.append(f"\n\n**Restart.** {lc.quiver:.2f} s until listening is {per100k:.2f} s per 100,000 "
             f"entries (the issue measured 7.6 s at 100,000 before); if it grows linearly, "
             f"{lc.quiver * GOAL_ENTRIES / n:.1f} s at 1 M (an extrapolation, not a "
             f"measurement)." if n != GOAL_ENTRIES else
             f"\n\n**Restart.** {lc.quiver:.2f} s until listening at 1 M entries.")
    nv = by.get("listen_no_verify")
    nv_source = ((res["raw"].get("restart_no_verify") or {}).get("stats") or {}).get(
        "recovery", {}).get("source")
    if nv and nv_source == "journal":
        t.append(f" With `--no-verify-on-startup` it took {nv.quiver:.2f} s: a restart from the "
                 f"index journal reads no data and verifies nothing (the flag applies to "
                 f"rebuilds from the manifests), so the difference is noise.")
    elif nv:
        lo, hi = lc.q_spread or (lc.quiver, lc.quiver)
        if lo <= nv.quiver <= hi:
            t.append(f" Without checksum verification (`--no-verify-on-startup`) it took "
                     f"{nv.quiver:.2f} s, within the spread of the clean restarts "
                     f"({lo:.2f}–{hi:.2f} s): no measurable share for verification in this "
                     f"run.")
        else:
            t.append(f" Without checksum verification (`--no-verify-on-startup`) it took "
                     f"{nv.quiver:.2f} s, so verifying the stored files is about "
                     f"{max(0.0, lc.quiver - nv.quiver) / lc.quiver:.0%} of a restart.")
    if lc.q_spread and lc.q_spread[1] > 1.3 * lc.q_spread[0]:
        t.append(f" The clean restarts ranged over {lc.q_spread[0]:.2f}–{lc.q_spread[1]:.2f} s: "
                 f"at this spread the median is the figure to read, and other work on the "
                 f"machine (see the details) is the likely cause.")
    cold = by.get("listen_cold")
    if cold:
        t.append(f" With the page cache dropped first (the data dir read from the disk) it "
                 f"took {cold.quiver:.1f} s ({cold.quiver / lc.quiver:.1f}× the warm median).")
    hit = by["hit_clean"]
    t.append(f" A get of a stored key first hit {hit.quiver:.2f} s after the start"
             + (" — at the listening line: the index is complete when the node listens."
                if hit.quiver - lc.quiver < 0.05 else
                f", {hit.quiver - lc.quiver:.2f} s after the listening line."))
    un = by["listen_unclean"]
    t.append(f" After SIGKILL: {un.quiver:.2f} s ({un.quiver / lc.quiver:.2f}× the clean "
             f"restart).")
    bpe = by["bytes_per_entry"]
    t.append(f"\n\n**Memory.** The restarted node's RSS is {by['rss_restart'].quiver:.0f} MiB "
             f"against {by['rss_empty'].quiver:.0f} MiB for an empty node: {bpe.quiver:.0f} "
             f"bytes per entry (no memory tier). This counts everything the process keeps per "
             f"entry (index, policy state, allocator overhead and memory the allocator kept "
             f"after the rebuild: the peak during the restart was "
             f"{by['rss_hwm'].quiver:.0f} MiB).")
    fill_rss = by["rss_fill"].quiver
    if by["rss_restart"].quiver > 1.2 * fill_rss:
        t.append(f" The process that took the {n:,} puts held {fill_rss:.0f} MiB: rebuilding "
                 f"the index at a start leaves "
                 f"{by['rss_restart'].quiver - fill_rss:.0f} MiB more behind than the puts "
                 f"did.")
    p50, p99 = by["get_p50"], by["get_p99"]
    mp50, mp99 = by["get_many_p50"], by["get_many_p99"]
    t.append(f"\n\n**Gets.** One client: p50 {p50.quiver:.3f} ms, p99 {p99.quiver:.3f} ms; "
             f"{args.get_procs} client processes at once: p50 {mp50.quiver:.3f}, p99 "
             f"{mp99.quiver:.3f} ms ({by['get_rate'].quiver:,.0f} gets/s). On 2 cores the "
             f"clients, the server and the kernel share the CPU, so the concurrent figures "
             f"include waiting for a core; p99 is the figure most sensitive to other work "
             f"on the machine (see the per-phase shares in the details).")
    t.append(f"\n\n**Fill.** {by['fill_rate'].quiver:,.0f} puts/s; the server used "
             f"{by['cpu_put'].quiver:.0f} µs of CPU per put.")
    return "".join(t)


# ---------------------------------------------------------------------------------------
# The docs section and the terminal summary


def docs_section(res: dict, rows, args, command: str, runtime: float) -> str:
    f = res["facts"]
    tbl = f["table"]
    main = [r for r in rows if not r.diag]
    lines = [
        BEGIN_MARK,
        *header_lines(res, command, runtime, "bench/scale_bench.py",
                      "scripts/bench_scale.sh"),
        "",
        "### Method",
        "",
        f"One `quiver serve` node ({' '.join(f['server_flags'])}; config "
        f"`{json.dumps(f['server_config'])}`: no memory tier, no entry limit, a budget that "
        f"evicts nothing) on a data dir in the machine's file system; clients are pyarrow "
        f"Flight clients in the harness and in client processes it spawns, over loopback.",
        "",
        f"1. **Empty node**: started on an empty data dir; after it answered a get and the "
        f"`stats` action and {args.settle:g} s more, its VmRSS is the baseline of the memory "
        f"figure.",
        f"2. **Fill**: {args.entries:,} puts of a {tbl['rows']}-row table ({tbl['nbytes']} "
        f"bytes of Arrow buffers; columns {', '.join(tbl['columns'])}) under keys "
        f"`s<i // 1000>/o<i % 1000>`, from {args.fill_procs} client processes × "
        f"{args.fill_threads} threads, each thread with its own connection (DoPut until the "
        f"PutResult, then the next). `stats` must then show {args.entries:,} entries.",
        f"3. **Clean restarts** ({args.restarts}): SIGTERM, wait for the exit, start the same "
        f"command again. Times are from just before starting the process (Popen) until it "
        f"printed `quiver listening on ...`, until a get of a stored key was a hit (polled), "
        f"and until `stats` showed every entry; then, {args.settle:g} s later, VmRSS "
        f"(RssAnon, RssFile, VmHWM) from `/proc/PID/status`. Index memory per entry = (that "
        f"VmRSS − the empty node's) / {args.entries:,}. Then one more restart with "
        f"`--no-verify-on-startup` (where the binary has it).",
        f"4. **Gets** on the restarted node: {args.get_warmup} warm-up gets, then "
        f"{args.gets:,} gets of random stored keys (DoGet, whole stream read, row count "
        f"checked) from one client, garbage collector off; then {args.gets:,} more from "
        f"{args.get_procs} client processes at once (one connection each).",
        f"5. **Unclean restart**: {args.extra:,} more puts, SIGKILL at once when the last "
        f"PutResult arrived, start again: the same times, and whether all "
        f"{args.entries + args.extra:,} entries came back."
        + ("\n6. **Cold restart**: a clean stop, `sync` and `echo 3 > /proc/sys/vm/drop_caches`"
           " (the whole machine's page cache, dentries and inodes), then a start."
           if args.cold else ""),
        "",
        f"The issue's figures from before: {BEFORE}.",
        "",
        "### Results",
        "",
        markdown_table(main, COLUMNS),
        "",
        "Spread (min–max over the restarts):",
        "",
        *spread_lines(main),
        "",
        "Diagnostics:",
        "",
        markdown_table([r for r in rows if r.diag], GOAL_COLUMNS[:2]),
        "",
        "Details:",
        "",
        *detail_lines(res, args),
        "",
        "### Analysis",
        "",
        analysis(res, rows, args),
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


def print_summary(res: dict, rows, args, runtime: float) -> None:
    print_goal_summary(f"Quiver, one node with {args.entries:,} entries", runtime, rows,
                       COLUMNS, GOAL_COLUMNS[:2],
                       detail_lines(res, args), analysis(res, rows, args), res)



def write_section(docs: Path, section: str) -> None:
    write_headed_section(docs, section, BEGIN_MARK, END_MARK, HEADING, "scale-bench")


def same_setup(args):
    keys = ("entries", "fill_procs", "fill_threads", "gets", "get_procs", "quick", "server_arg")
    return lambda d: all(d["args"][k] == getattr(args, k) for k in keys)
