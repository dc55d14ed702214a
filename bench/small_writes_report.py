"""The small-writes-bench section of docs/benchmarks.md: bench/small_writes_bench.py's
write-up.

summarize turns a run's raw figures into bench_docs.GoalRow rows judged against the issue's
goals for small writes (Quiver default p50 <= 0.5x Flame's object cache; Quiver fsync p50 <=
1.3x a raw write+fsync+rename+directory fsync; 64 concurrent putters on Quiver fsync >= 10x
one); detail_lines and analysis word the rest from the figures; docs_section renders the
section between BEGIN_MARK and END_MARK, which write_section places at the end of the file
under HEADING the first time.
"""
from __future__ import annotations

import json
from pathlib import Path

from bench_docs import (GOAL_COLUMNS, GoalRow, header_lines, markdown_table, noise_note,
                        spread_lines, print_goal_summary, write_headed_section)
from bench_env import median, percentile, spread

BEGIN_MARK = "<!-- small-writes-bench:begin -->"
END_MARK = "<!-- small-writes-bench:end -->"
HEADING = "## Small writes"

DEFAULT, FSYNC, FLAME = "Quiver (default)", "Quiver (fsync)", "Flame"
RAW, RAW_PLAIN = "raw write+fsync+rename+dir fsync", "raw write+fsync"
GOAL_VS_FLAME, GOAL_VS_RAW, GOAL_SCALING = 0.5, 1.3, 10.0


def pooled(blocks):
    return [x for b in blocks for x in b]


def summarize(res: dict, args) -> list[GoalRow]:
    raw, f = res["raw"], res["facts"]
    lat = {k: pooled(v) for k, v in raw["latency_blocks_ms"].items()}
    p50s = {k: [percentile(b, 50) for b in v] for k, v in raw["latency_blocks_ms"].items()}

    def p(name, q):
        return percentile(lat[name], q) if name in lat else None

    def sp(name):
        return spread(p50s[name]) if name in p50s else None

    nan = float("nan")
    label = f"Put {f['object']['label']}"
    no_fsync = "" if f["has_durability"] else " (skipped: this binary has no --durability)"
    no_flame = "" if FLAME in lat else " (no Flame run: --flame-cache not given)"
    rows = [
        GoalRow(f"{label}, {DEFAULT}, p50", "ms", False, p(DEFAULT, 50), p(FLAME, 50),
                sp(DEFAULT), sp(FLAME), id="default_p50", baseline_name="Flame's object cache",
                goal=GOAL_VS_FLAME, goal_on="ratio",
                goal_text=f"≤ {GOAL_VS_FLAME:g}× Flame's p50{no_flame}"),
        GoalRow(f"{label}, {DEFAULT}, p99", "ms", False, p(DEFAULT, 99), p(FLAME, 99),
                id="default_p99", baseline_name="Flame's object cache"),
        GoalRow(f"{label}, {FSYNC}, p50", "ms", False, p(FSYNC, 50) or nan, p(RAW, 50),
                sp(FSYNC), sp(RAW), id="fsync_p50", baseline_name="raw durable write",
                goal=GOAL_VS_RAW, goal_on="ratio",
                goal_text=f"≤ {GOAL_VS_RAW:g}× raw write+fsync+rename+dir fsync{no_fsync}"),
        GoalRow(f"{label}, {FSYNC}, p99", "ms", False, p(FSYNC, 99) or nan, p(RAW, 99),
                id="fsync_p99", baseline_name="raw durable write"),
        GoalRow(f"{label}, {DEFAULT}, p50 against the disk", "ms", False, p(DEFAULT, 50),
                p(RAW, 50), id="default_vs_raw", baseline_name="raw durable write"),
    ]
    tp = raw["throughput"]
    n = str(args.putters)
    for name, goal in ((FSYNC, GOAL_SCALING), (DEFAULT, None), (FLAME, None), (RAW, None)):
        if name not in tp and name != FSYNC:
            continue
        many = [x["rate"] for x in tp.get(name, {}).get(n, [])]
        one = [x["rate"] for x in tp.get(name, {}).get("1", [])]
        rows.append(GoalRow(
            f"Puts/s, {args.putters} concurrent putters, {name}", "puts/s", True,
            median(many) if many else nan, median(one) if one else None, spread(many),
            spread(one), id=f"scaling_{name}", baseline_name="1 putter",
            goal=goal, goal_on="ratio",
            goal_text=(f"≥ {goal:g}× one putter{no_fsync}" if goal else ""),
            diag=name in (FLAME, RAW)))
    # Diagnostics
    for name in (n for n in lat if n == RAW_PLAIN):  # the others are in the main table
        rows.append(GoalRow(f"{label}, {name}, p50", "ms", False, p(name, 50), None, sp(name),
                            id=f"lat_{name}", diag=True))
        rows.append(GoalRow(f"{label}, {name}, p99", "ms", False, p(name, 99), None,
                            id=f"lat99_{name}", diag=True))
    for name, us in raw.get("latency_server_cpu_us", {}).items():
        if name.startswith(("Quiver", "Flame")):
            rows.append(GoalRow(f"Server CPU per put, {name} (sequential puts)", "µs", False,
                                us, None, id=f"cpu_{name}", diag=True))
    return rows


def detail_lines(res: dict, args) -> list[str]:
    raw, f = res["raw"], res["facts"]
    out = []
    for name, blocks in raw["latency_blocks_ms"].items():
        b50 = [percentile(b, 50) for b in blocks]
        out.append(f"* {name}: p50 {percentile(pooled(blocks), 50):.3f} ms, p99 "
                   f"{percentile(pooled(blocks), 99):.3f} ms, max "
                   f"{max(pooled(blocks)):.2f} ms over {len(pooled(blocks)):,} puts; block "
                   f"medians {min(b50):.3f}–{max(b50):.3f} ms")
    blocks = raw["latency_blocks_ms"]
    for a, b in ((DEFAULT, FLAME), (FSYNC, RAW), (DEFAULT, RAW)):
        if a in blocks and b in blocks:
            rs = [percentile(x, 50) / percentile(y, 50) for x, y in zip(blocks[a], blocks[b])]
            out.append(f"* {a} / {b}, p50 of the same turn's blocks (the systems' blocks of one "
                       f"turn ran back to back, so they share the machine's conditions): median "
                       f"{median(rs):.2f}×, range {min(rs):.2f}–{max(rs):.2f}× over {len(rs)} "
                       f"turns")
    for name, by in raw["throughput"].items():
        parts = [f"{c} putter{'s' if c != '1' else ''}: "
                 + ", ".join(f"{x['rate']:,.0f}" for x in xs) + " puts/s"
                 for c, xs in by.items()]
        out.append(f"* Throughput windows, {name}: " + "; ".join(parts))
    for name, st in raw.get("stats", {}).items():
        if "durability" in st:
            out.append(f"* {name} `stats` `durability`: `{json.dumps(st['durability'], sort_keys=True)}`")
        else:
            out.append(f"* {name}: the `stats` action has no `durability` object (this binary "
                       f"predates it)")
    disc = {k: v for k, v in f.get("discarded_for_noise", {}).items() if v}
    if disc:
        out.append("* Latency blocks run again for noise: "
                   + ", ".join(f"{v} in {k}" for k, v in disc.items()))
    shares = f.get("phase_other_cpu_share", {})
    if shares:
        out.append("* Other work's share of the machine per phase: "
                   + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    return out


def analysis(res: dict, rows, args) -> str:
    f, raw = res["facts"], res["raw"]
    by = {r.id: r for r in rows}
    goals = [r for r in rows if r.goal is not None]
    judged = [r for r in goals if r.met is not None]
    noise = noise_note(res)
    t = [(noise + "\n\n" if noise else "") + f"**Goals.** {sum(1 for r in judged if r.met)} of {len(judged)} goals measured in "
         f"this run are met"
         + (f" ({len(goals) - len(judged)} not measured)" if len(judged) < len(goals) else "")
         + ". "]
    for r in goals:
        if r.met is None:
            t.append(f"{r.metric}: not measured ({r.goal_text}). ")
        else:
            t.append(f"{r.metric}: {r.fmt(r.quiver)} {r.unit} against {r.fmt(r.baseline)} "
                     f"{r.unit} ({r.baseline_name}) = {r.ratio:.2f}×, goal {r.goal_text} — "
                     + ("met" if r.met else f"not met ({r.judged / r.goal:.2f}× the bound)")
                     + ". ")
    d = by["default_vs_raw"]
    if d.ratio is not None:
        cpu = raw.get("latency_server_cpu_us", {}).get(DEFAULT)
        mode = (raw.get("stats", {}).get(DEFAULT) or {}).get("durability")
        t.append(f"\n\n**The default mode and the disk.** A default-mode put took "
                 f"{d.quiver:.2f} ms at p50, {d.ratio:.2f}× the raw durable write "
                 f"({d.baseline:.2f} ms) on the same file system")
        if mode and mode.get("mode") == "process":
            t.append(f": it waits for no flush (the data dir was flushed "
                     f"{mode.get('syncs', 0):,} times in the background, every "
                     f"{mode.get('sync_interval_ms')} ms), so its time is the server's work"
                     + (f" ({cpu:,.0f} µs of CPU per put)" if cpu else "")
                     + ", the client's and the file system's metadata (a data file and a "
                     "manifest created and renamed per put), not the disk.")
        else:
            t.append(" (this binary flushes before it answers: no `durability` setting).")
    raw_sc = by.get(f"scaling_{RAW}")
    if raw_sc and raw_sc.ratio is not None:
        t.append(f" {args.putters} raw writers, each fsyncing its own file, reached "
                 f"{raw_sc.quiver:,.0f} writes/s against {raw_sc.baseline:,.0f} for one "
                 f"({raw_sc.ratio:.1f}×): what this disk gives concurrent independent "
                 f"fsyncs, without any batching.")
    fs = by.get(f"scaling_{FSYNC}")
    ds = by.get(f"scaling_{DEFAULT}")
    if ds and ds.ratio is not None:
        t.append(f" Quiver's default mode went from {ds.baseline:,.0f} puts/s with one putter "
                 f"to {ds.quiver:,.0f} with {args.putters} ({ds.ratio:.1f}×).")
    if fs and fs.ratio is not None:
        t.append(f" The fsync mode: {fs.baseline:,.0f} → {fs.quiver:,.0f} puts/s "
                 f"({fs.ratio:.1f}×).")
    t.append(f"\n\n**Noise.** The machine has {f['machine']['cores']} cores shared with other "
             f"work; the latency blocks alternate between the systems so that noise hits all "
             f"of them, and the p99 figures and the throughput windows move most with it "
             f"(other work's share per phase is in the details). fsync latency also depends on "
             f"the virtual disk and whatever else writes to it.")
    return "".join(t)


def docs_section(res: dict, rows, args, command: str, runtime: float) -> str:
    f = res["facts"]
    o = f["object"]
    lay = f.get("putter_layout", {})
    main = [r for r in rows if not r.diag]
    flame = (f"Flame's object cache: `{f['flame_command']}` (flame_cache.py: config "
             f"`storage: fs://DATA_DIR`, eviction lru 1G; puts as flamepy 0.6.0's "
             f"`put_object(\"bench/SESSION\", table)`: schema metadata "
             f"`flame.cache.format=arrow-table-v1`, one-element path descriptor "
             f"`bench/SESSION`, BSON PutResult)" if f.get("flame_command")
             else "Flame's object cache: not run (no `--flame-cache`)")
    lines = [
        BEGIN_MARK,
        *header_lines(res, command, runtime, "bench/small_writes_bench.py",
                      "scripts/bench_small_writes.sh"),
        "",
        "### Method",
        "",
        "Systems, each with its data in the same file system: `quiver serve` with its "
        "default durability; `quiver serve --durability fsync`"
        + ("" if f["has_durability"] else " (not run: this binary's `serve --help` has no "
           "`--durability`)") + f"; {flame}; and the harness writing files itself: open a "
        f"temporary file, write the same {o['ipc_bytes']:,} bytes a put stores (the table's "
        f"IPC stream), fsync, close, rename into place, fsync the directory (and, as a "
        f"diagnostic, only write+fsync).",
        "",
        f"1. **Latency**: a put is a DoPut of a {o['rows']}-row table ({o['nbytes']:,} bytes "
        f"of Arrow buffers, {o['ipc_bytes']:,} bytes of IPC) under a new key, timed until the "
        f"PutResult arrived. {args.warmup} warm-up puts per system, then {args.puts:,} per "
        f"system in blocks of 50 alternating between the systems (order reversed every "
        f"turn), garbage collector off; a turn during which other work used more than "
        f"{args.max_noise:.0%} of the machine is run again, but only turns in which every "
        f"system's block took at least 0.2 s can be judged (`bench_servers.PairedRuns`), "
        f"which a fast system's 50 puts do not (Flame's). p50/p99 over all puts; spread = "
        f"range of the blocks' medians. The details also give each ratio per turn.",
        f"2. **Throughput**: 1 putter (one client process, one connection) vs. "
        f"{args.putters} putters ({lay.get('procs', '?')} client processes × "
        f"{lay.get('threads', '?')} threads, a connection each), each putting new keys in a "
        f"loop for {args.window:g} s after 2 warm-up puts; {args.reps} windows per system "
        f"and count, alternating; the raw baseline's putters are threads of the harness. "
        f"Medians of the windows.",
        "",
        "### Results",
        "",
        markdown_table(main, GOAL_COLUMNS),
        "",
        "Spread (min–max of the latency blocks' medians, of the throughput windows):",
        "",
        *spread_lines(main),
        "",
        "Diagnostics:",
        "",
        markdown_table([r for r in rows if r.diag], GOAL_COLUMNS[:5]),
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
    print_goal_summary("Small writes", runtime, rows, GOAL_COLUMNS, GOAL_COLUMNS[:5],
                       detail_lines(res, args), analysis(res, rows, args), res, medians=True)



def write_section(docs: Path, section: str) -> None:
    write_headed_section(docs, section, BEGIN_MARK, END_MARK, HEADING, "small-writes-bench")


def same_setup(args):
    keys = ("puts", "putters", "putter_procs", "window", "quick", "server_arg", "flame_cache")
    return lambda d: all(d["args"][k] == getattr(args, k) for k in keys)
