"""The hot-key-bench section of docs/benchmarks.md: bench/hot_key_bench.py's write-up.

summarize turns a run's raw figures into bench_docs.GoalRow rows (each freshness mode's p50,
p99, p99.9 and max request latency against the plain mode's, pooled over the repetitions);
detail_lines and analysis word the rest from the figures (requests by kind, executions and
refreshes per mode); docs_section renders the section between BEGIN_MARK and END_MARK, which
write_section places at the end of the file under HEADING the first time.
"""
from __future__ import annotations

from pathlib import Path

from bench_docs import (GOAL_COLUMNS, GoalRow, header_lines, markdown_table, noise_note,
                        print_goal_summary, write_headed_section)
from bench_env import percentile

BEGIN_MARK = "<!-- hot-key-bench:begin -->"
END_MARK = "<!-- hot-key-bench:end -->"
HEADING = "## Freshness: a hot key across expiries"

LABELS = {"plain": "no SWR/XFetch", "swr": "stale-while-revalidate",
          "xfetch": "XFetch early refresh", "swr+xfetch": "SWR + XFetch"}


def pooled(res: dict) -> dict:
    """Per mode: latencies (ms), kinds and summed stats over the repetitions."""
    out: dict = {}
    for run in res["raw"]["runs"]:
        m = out.setdefault(run["mode"], {"lat": [], "kinds": [], "stats": {}, "reps": 0,
                                         "first_exec_s": []})
        m["lat"] += run["latencies_ms"]
        m["kinds"] += run["kinds"]
        m["reps"] += 1
        m["first_exec_s"].append(run["first_exec_s"])
        for k, v in run["stats"].items():
            m["stats"][k] = m["stats"].get(k, 0) + v
    return out


def summarize(res: dict, args) -> list[GoalRow]:
    modes = pooled(res)
    base = modes.get("plain")
    rows = []
    for mode in res["facts"]["modes"]:
        lat = modes[mode]["lat"]
        for q, name in ((50, "p50"), (99, "p99"), (99.9, "p99.9"), (100, "max")):
            b = percentile(base["lat"], q) if base and mode != "plain" else None
            rows.append(GoalRow(f"Hot key, {LABELS[mode]}, {name}", "ms", False,
                                percentile(lat, q), b, id=f"{mode}_{name}",
                                baseline_name=LABELS["plain"] if b is not None else "",
                                diag=name == "p50"))
    return rows


def kind_share(m: dict, kind: str) -> float:
    return m["kinds"].count(kind) / max(1, len(m["kinds"]))


def detail_lines(res: dict, args) -> list[str]:
    lines = []
    for mode, m in pooled(res).items():
        s, n = m["stats"], len(m["kinds"])
        waited = [x for x, k in zip(m["lat"], m["kinds"]) if k == "miss"]
        lines.append(
            f"* {LABELS[mode]}: {n:,} requests over {m['reps']} × {args.duration:g} s: "
            f"{m['kinds'].count('hit'):,} fresh hits, {m['kinds'].count('stale'):,} stale hits, "
            f"{len(waited):,} misses (waited for an execution"
            + (f", median {percentile(waited, 50):.0f} ms" if waited else "")
            + f"); the server ran {s['executions']} executions (the warm-up's included), "
            f"{s['refreshes']} background refreshes ({s['early_refreshes']} early), "
            f"{s['failures']} failures")
    runs = res["raw"]["runs"]
    first = sorted(r["first_exec_s"] for r in runs)
    lines.append(f"* The query's first execution (a miss, before the clients start) took "
                 f"{first[len(first) // 2] * 1000:.0f} ms (median over the {len(runs)} server "
                 f"starts); in Python's sqlite3 "
                 f"{res['facts']['query_s_in_python_sqlite'] * 1000:.0f} ms")
    return lines


def analysis(res: dict, rows, args) -> str:
    modes = pooled(res)
    by_id = {r.id: r for r in rows}
    parts = [noise_note(res)] if noise_note(res) else []
    plain = modes.get("plain")
    if plain:
        parts.append(
            f"**Without freshness** {kind_share(plain, 'miss'):.1%} of the hot key's requests "
            f"missed: at each of the ~{args.duration / args.ttl:.0f} expiries per run, every "
            f"client that arrived waited for the one execution (they join it), so the tail is "
            f"the query's cost. Those requests are "
            f"{'under' if kind_share(plain, 'miss') < 0.01 else 'over'} 1% of all, so they "
            f"show at p99.9 "
            f"({by_id['plain_p99.9'].quiver:,.0f} ms) and max "
            f"({by_id['plain_max'].quiver:,.0f} ms) rather than at p99 "
            f"({by_id['plain_p99'].quiver:,.1f} ms).")
    for mode in ("swr", "xfetch", "swr+xfetch"):
        if mode not in modes:
            continue
        m, p999, mx = modes[mode], by_id[f"{mode}_p99.9"], by_id[f"{mode}_max"]
        ratio = f" ({p999.ratio:.2f}× the plain p99.9)" if p999.ratio is not None else ""
        parts.append(
            f"**{LABELS[mode]}**: {m['kinds'].count('miss'):,} misses "
            f"({kind_share(m, 'miss'):.2%}), {kind_share(m, 'stale'):.1%} stale hits, "
            f"{m['stats']['refreshes']} background refreshes; p99.9 {p999.quiver:,.1f} "
            f"ms{ratio}, max {mx.quiver:,.0f} ms.")
    parts.append(
        "Reading the figures: a request that waits for an execution takes about the query's "
        "cost; a hit takes the time to stream the stored result. SWR removes the waits at "
        "every expiry at the price of serving a result up to one refresh old past its TTL; "
        "XFetch removes them without serving anything expired, provided a hit comes in the "
        "last few recompute costs before expiry (with beta 1 and a short query only the last "
        "moments qualify, so a miss can still slip through when the key is read sparsely). "
        "What tail the freshness modes keep without any miss is the background execution "
        "competing with the hits for the machine's cores, and the machine's noise (2 "
        "shared cores).")
    return "\n\n".join(parts) + "\n"


def docs_section(res: dict, rows, args, command: str, runtime: float) -> str:
    lines = [
        BEGIN_MARK,
        *header_lines(res, command, runtime, "bench/hot_key_bench.py",
                      ".venv/bin/python bench/hot_key_bench.py"),
        "",
        "### Method",
        "",
        f"One query (a SQLite recursive CTE over {args.cte_rows:,} rows: its execution takes "
        f"a noticeable time, see the details) read in a loop by {args.clients} concurrent "
        f"clients (threads of the harness, a Flight connection each) for {args.duration:g} s, "
        f"against a fresh `quiver serve` per mode, the source's TTL {args.ttl:g} s (so about "
        f"{args.duration / args.ttl:.0f} expiries per run). Modes: no freshness "
        f"(`stale_while_revalidate_s` 0, `early_refresh_beta` 0); `stale_while_revalidate_s` "
        f"{args.swr:g}; `early_refresh_beta` {args.beta:g}; both. {args.reps} repetition(s) "
        f"per mode, in alternating order. A request is timed from its DoGet to the end of its "
        f"stream; percentiles over every request of a mode.",
        "",
        "### Results",
        "",
        markdown_table([r for r in rows if not r.diag], GOAL_COLUMNS[:5]),
        "",
        "Medians:",
        "",
        markdown_table([r for r in rows if r.diag], GOAL_COLUMNS[:5]),
        "",
        "Details:",
        "",
        *detail_lines(res, args),
        "",
        "### Analysis",
        "",
        analysis(res, rows, args).rstrip("\n"),
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


def print_summary(res: dict, rows, args, runtime: float) -> None:
    print_goal_summary("Hot key across expiries", runtime, rows, GOAL_COLUMNS[:5],
                       GOAL_COLUMNS[:5],
                       detail_lines(res, args), analysis(res, rows, args), res)



def write_section(docs: Path, section: str) -> None:
    write_headed_section(docs, section, BEGIN_MARK, END_MARK, HEADING, "hot-key-bench")


def same_setup(args):
    keys = ("clients", "ttl", "duration", "swr", "beta", "cte_rows", "modes", "quick")
    return lambda d: all(d["args"].get(k) == getattr(args, k) for k in keys)
