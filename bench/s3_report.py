"""The s3-bench section of docs/benchmarks.md: bench/s3_bench.py's write-up.

summarize turns a run's raw figures into rows (S3Row, a bench_docs.Row: one system's figure
in `quiver`, the embedded store's in `baseline`, the Redis GET baseline's in `redis`);
bench_docs renders them in this harness's COLUMNS; detail_lines gives the tier checks, the S3
requests per hit and put and the peak RSS per hit; analysis words the discussion from the
figures; docs_section renders the whole section between BEGIN_MARK and END_MARK, which
write_section places after the shared-bench section the first time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench_docs import (Column, Row, history_lines, markdown_table, spread_lines,
                        print_goal_summary, write_docs)
from bench_env import WAITED, median, percentile, spread

BEGIN_MARK = "<!-- s3-bench:begin -->"
END_MARK = "<!-- s3-bench:end -->"
HEADING = "## S3 store"
AFTER_MARK = "<!-- shared-bench:end -->"

SYSTEMS = ("s3", "disk", "memory", "embedded", "redis")
NAMES = {"s3": "S3 (no tiers)", "disk": "disk tier", "memory": "memory tier",
         "embedded": "embedded (local store)", "redis": "Redis GET + open_stream"}


@dataclass
class S3Row(Row):
    id: str = ""
    system: str = ""
    redis: float | None = None
    baseline_name: str = "embedded"

    quiver_label = ""
    spread_joiner = " vs. "

    @property
    def baseline_label(self) -> str:
        return self.baseline_name

    def fmt(self, v) -> str:
        if v is None or v != v:
            return "—"
        if self.unit in ("req/s", "MB/s"):
            return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"

    def ratio_to(self, other, markdown=False) -> str:
        if other in (None, 0) or self.quiver != self.quiver:
            return "—"
        r = self.quiver / other
        text = f"{r:.3f}×" if r < 0.1 else f"{r:.2f}×"
        return f"**{text}**" if markdown else text

    def metric_cell(self) -> str:
        return f"{self.metric} ({self.unit}, {'higher' if self.higher_is_better else 'lower'} better)"


COLUMNS = (
    Column("metric", S3Row.metric_cell, text=True),
    Column("served from", lambda r: NAMES.get(r.system, r.system), text=True),
    Column("value", lambda r: r.fmt(r.quiver)),
    Column("baseline", lambda r: r.fmt(r.baseline), md_header="embedded / baseline"),
    Column("ratio", lambda r: r.ratio_to(r.baseline),
           md_cell=lambda r: r.ratio_to(r.baseline, markdown=True)),
    Column("Redis GET", lambda r: r.fmt(r.redis)),
    Column("ratio/Redis", lambda r: r.ratio_to(r.redis), md_header="ratio to Redis"),
)


def pooled(blocks):
    return [x for b in blocks for x in b]


def summarize(res: dict, args) -> list[S3Row]:
    raw, f = res["raw"], res["facts"]
    rows = []
    for o in f["objects"]:
        name, label = o["name"], o["label"]
        lat = {s: raw["latency_blocks_ms"][s][name] for s in SYSTEMS}
        for p in (50, 99):
            vals = {s: percentile(pooled(lat[s]), p) for s in SYSTEMS}
            blocks50 = {s: [percentile(b, 50) for b in lat[s]] for s in SYSTEMS}
            for s in ("s3", "disk", "memory", "embedded"):
                rows.append(S3Row(f"Hit {label}, p{p}", "ms", False, vals[s], vals["embedded"],
                                  spread(blocks50[s]) if p == 50 else None,
                                  spread(blocks50["embedded"]) if p == 50 else None,
                                  id=f"lat_{name}_p{p}_{s}", system=s, redis=vals["redis"]))
        tp = {s: raw["throughput"][s][name] for s in SYSTEMS}
        rps = {s: [x["rps"] for x in tp[s]] for s in SYSTEMS}
        mbs = {s: [x["rps"] * o["nbytes"] / 1e6 for x in tp[s]] for s in SYSTEMS}
        for unit, vals, what in (("MB/s", mbs, "throughput"), ("req/s", rps, "requests")):
            for s in ("s3", "disk", "memory", "embedded"):
                rows.append(S3Row(f"Hit {label}, {args.threads} threads", unit, True,
                                  median(vals[s]), median(vals["embedded"]), spread(vals[s]),
                                  spread(vals["embedded"]), id=f"{what}_{name}_{s}", system=s,
                                  redis=median(vals["redis"]), diag=(unit == "req/s"
                                                                     and o["nbytes"] > 4 << 20)))
    for o in f["objects"]:
        name, label = o["name"], o["label"]
        emb = raw["put_s"]["embedded"][name]
        for s in ("s3", "disk"):
            xs = raw["put_s"][s][name]
            rows.append(S3Row(f"Put (miss) {label}, p50", "ms", False, median(xs) * 1000,
                              median(emb) * 1000, tuple(x * 1000 for x in spread(xs)),
                              tuple(x * 1000 for x in spread(emb)),
                              id=f"put_{name}_{s}", system=s))
    rss = raw.get("rss")
    if rss:
        ro = f["rss_object"]
        bound = (f["readahead"]["depth"] + 1) * f["readahead"]["bytes"] + ro["largest_message_approx"]
        growth = [max(0, x["hwm_after_kib"] - x["rss_before_kib"]) / 1024 for x in rss]
        rows.append(S3Row(f"Peak RSS growth, first hit of {ro['label']} from S3", "MiB", False,
                          growth[0], bound / (1 << 20), spread(growth), None,
                          id="rss_growth", system="s3",
                          baseline_name="bound (depth+1) × 4 MiB + largest message"))
    return rows


# ---------------------------------------------------------------------------------------


def request_line(counts: dict) -> str:
    parts = [f"{v} {k}" for k, v in sorted(counts.items()) if k != "wall_s"]
    return ", ".join(parts) or "none"


def detail_lines(res: dict, args) -> list[str]:
    raw, f = res["raw"], res["facts"]
    out = []
    for n, c in f.get("tier_check", {}).items():
        out.append(f"* {NAMES[n]} node during the timed hits: {c['hits']} hits, "
                   f"{c['disk_hits']} from the disk tier, {c['memory_hits']} from memory, "
                   f"{c['misses']} misses: {'as intended' if c['ok'] else 'NOT AS INTENDED'}.")
    objs = {o["name"]: o for o in f["objects"]}
    ro = f.get("rss_object")
    if ro:
        objs["big"] = {"label": ro["label"], "ipc_bytes": ro["ipc_bytes"], "batches": ro["batches"]}
    req = raw.get("s3_requests", {})
    for name, o in objs.items():
        g, p = req.get("get", {}).get(name), req.get("put", {}).get(name)
        if g is None:
            continue
        gets = g.get("GET", 0)
        out.append(f"* {o['label']} ({o['ipc_bytes']:,} bytes of IPC, {o['batches']} batch(es)): "
                   f"a hit from S3 sent {request_line(g)} request(s) "
                   f"({o['ipc_bytes'] / max(1, gets) / 1024:,.0f} KiB per GET on average; "
                   f"{g['wall_s'] * 1000:.0f} ms, s3proxy logging at debug level); "
                   f"the put sent {request_line(p)}.")
    for i, x in enumerate(raw.get("rss", [])):
        out.append(f"* RSS hit {i + 1}: {x['rss_before_kib'] / 1024:.1f} MiB before, VmHWM "
                   f"{x['hwm_after_kib'] / 1024:.1f} MiB after (+"
                   f"{(x['hwm_after_kib'] - x['rss_before_kib']) / 1024:.1f} MiB), sampled "
                   f"peak {x['sampled_peak_kib'] / 1024:.1f} MiB, {x['seconds']:.2f} s.")
    cpu = raw.get("latency_server_cpu_us", {})
    for o in f["objects"]:
        out.append(f"* Server-side CPU per hit, {o['label']} (latency phase; the S3 systems "
                   f"include s3proxy's JVM): " + ", ".join(
                       f"{NAMES[s]} {cpu[s][o['name']] / 1000:.2f} ms" for s in SYSTEMS
                       if o["name"] in cpu.get(s, {})) + ".")
    return out


def analysis(res: dict, rows, args) -> str:
    f, raw = res["facts"], res["raw"]
    by = {r.id: r for r in rows}
    paras = []
    objs = f["objects"]
    t = "**Hits.** At the median a hit took "
    parts = []
    for o in objs:
        n = o["name"]
        r = {s: by[f"lat_{n}_p50_{s}"] for s in ("s3", "disk", "memory", "embedded")}
        parts.append(f"{o['label']}: {r['s3'].quiver:.2f} ms from S3, {r['disk'].quiver:.2f} "
                     f"from the disk tier, {r['memory'].quiver:.2f} from memory, "
                     f"{r['embedded'].quiver:.2f} embedded and {r['s3'].redis:.2f} ms with a "
                     f"Redis GET (S3 {r['s3'].quiver / r['embedded'].quiver:.1f}× embedded, "
                     f"{r['s3'].quiver / r['s3'].redis:.1f}× Redis)")
    t += "; ".join(parts) + ". "
    big = objs[-1]["name"]
    tiers = [by[f"throughput_{big}_{s}"] for s in ("disk", "memory", "embedded")]
    t += (f"Once a copy is local, the disk and memory tiers serve like the embedded store "
          f"({', '.join(f'{r.ratio_to(r.baseline)}' for r in tiers[:2])} of its MB/s for the "
          f"{objs[-1]['label']} object with {args.threads} threads), and "
          f"{'faster' if tiers[2].quiver > tiers[2].redis else 'slower'} than Redis GET + "
          f"open_stream ({tiers[2].ratio_to(tiers[2].redis)}). ")
    paras.append(t)

    req = raw.get("s3_requests", {}).get("get", {})
    if req:
        ra = f["readahead"]
        t = ("**S3 requests per hit.** ")
        parts = []
        for o in objs + ([{"name": "big", "label": f["rss_object"]["label"],
                           "ipc_bytes": f["rss_object"]["ipc_bytes"],
                           "batches": f["rss_object"]["batches"]}] if "big" in req else []):
            g = req.get(o["name"], {}).get("GET", 0)
            ideal = 1 + max(0, -(-(o["ipc_bytes"] - 256 * 1024) // ra["bytes"]))
            parts.append(f"{o['label']}: {g} GETs ({o['batches']} batch(es); about {ideal} with "
                         f"{ra['bytes'] >> 20} MiB read-ahead ranges after the 256 KiB head)")
        t += "; ".join(parts) + ". "
        gets_big = req.get(objs[-1]["name"], {}).get("GET", 0)
        if gets_big > 2 * (objs[-1]["batches"] + 1):
            t += ("That is about four GETs per IPC message, one for each piece the IPC message "
                  "reader asks for (continuation marker, length, metadata, body), issued one "
                  "after the other: the hit path reads the stored stream through "
                  "`RandomAccessFile::GetStream` (`src/format/stored_stream.cc`), whose reads "
                  "are `ReadAt` calls, and `ReadaheadFile::ReadAt` goes straight to S3 "
                  "without reading ahead, so the read-ahead never engages on a hit. ")
            t += ("On loopback a GET costs well under a millisecond, so this shows mostly as "
                  "CPU (TLS, HTTP, s3proxy); against real S3 each sequential GET adds its "
                  "first-byte latency, so a hit of a many-batch object would take seconds. ")
        else:
            t += ("The read-ahead engages: one GET per range, not per message, with the next "
                  "ranges requested while the current one is sent, so against real S3 a hit "
                  "pays S3's first-byte latency about once per range in flight rather than "
                  "once per message. ")
        paras.append(t)

    puts = [by.get(f"put_{o['name']}_s3") for o in objs]
    t = ("**Puts (the miss overhead).** Time to the PutResult: "
         + "; ".join(f"{o['label']}: {r.quiver:.1f} ms into S3 vs. {r.baseline:.1f} ms "
                     f"embedded ({r.ratio_to(r.baseline)}), {by[f'put_' + o['name'] + '_disk'].quiver:.1f} "
                     f"ms with the disk tier copying during the fill"
                     for o, r in zip(objs, puts) if r) + ". ")
    preq = raw.get("s3_requests", {}).get("put", {})
    if preq:
        t += ("A put sent " + "; ".join(f"{request_line(preq[o['name']])} ({o['label']})"
                                        for o in objs if o["name"] in preq) + ". ")
    t += ("s3proxy runs on loopback with an in-memory backend: no network round trip and no "
          "disk behind it. Against real S3 each of those requests adds a round trip plus the "
          "service's own latency (tens of ms per PUT and per CreateMultipartUpload / "
          "CompleteMultipartUpload), and the upload is bounded by the node's bandwidth to S3, "
          "so the ratios here are a lower bound for the overhead of a miss.")
    paras.append(t)

    if "rss_growth" in by:
        r = by["rss_growth"]
        t = (f"**Memory of a hit from S3.** Serving the {f['rss_object']['label']} object from "
             f"S3 raised the peak RSS of a node that had served only the smaller objects by "
             + (f"{r.quiver:.1f} MiB" if r.quiver >= 0.5 else "nothing measurable (< 0.5 MiB)")
             + f" (all {len(raw['rss'])} hits: {r.span(*r.q_spread)} MiB; "
             f"the later ones reuse memory the allocator kept), against a bound of "
             f"{r.baseline:.1f} MiB for the "
             f"read-ahead ((depth + 1) × {f['readahead']['bytes'] >> 20} MiB plus the largest "
             f"IPC message): "
             + ("within it. " if r.quiver <= r.baseline else "above it. "))
        t += ("The hit never holds the whole object: at most the ranges in flight and the "
              "message being sent.")
        paras.append(t)
    return "\n\n".join(paras)


def docs_section(res: dict, rows, args, command: str, runtime: float) -> str:
    f = res["facts"]
    m = f["machine"]
    main = [r for r in rows if not r.diag]
    lines = [
        BEGIN_MARK,
        "",
        f"Written by `bench/s3_bench.py` ({f['date_utc']}; run time {runtime:.0f} s"
        + (f", {WAITED['wall']:.0f} s of it waiting for idle" if WAITED["wall"] >= 1 else "")
        + f"). Command: `{command}`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, {m['os']}, kernel "
        f"{m['kernel']}; data dirs on {m['data_dir_fs']}. Quiver {m['quiver_commit']} "
        f"(binary sha256 {f['quiver_binary']['sha256']}), pyarrow {m['pyarrow']}, Python "
        f"{m['python']}, redis-server {f['software']['redis']}, redis-py "
        f"{f['software']['redis_py']}, s3proxy {f['software']['s3proxy']}, "
        f"{f['software']['java']}. Other work used {f['other_cpu_share']:.0%} of the machine "
        f"during the run" + (" (noisy: treat the figures with care)"
                             if f["other_cpu_share"] > 0.1 else "") + ".",
        "",
        "Setup: one s3proxy (HTTPS on 127.0.0.1, transient in-memory backend, SSE-C on every "
        "object) and four `quiver serve` nodes side by side: **S3 (no tiers)** "
        "(`--store s3://... --no-disk-tier`), **disk tier** (`--store s3://...` with its "
        f"node-local disk tier), **memory tier** (`--no-disk-tier --memory-size "
        f"{f['memory_size'] >> 20}MiB`) and **embedded** (local store, no S3: the reference); "
        "plus **Redis GET + open_stream**: a redis-server holding the same IPC bytes, read "
        "with redis-py `GET` and `pyarrow.ipc.open_stream(...).read_all()`, what a user would "
        "build instead. Objects: "
        + ", ".join(f"{o['label']} ({o['ipc_bytes']:,} bytes of IPC)" for o in f["objects"])
        + f" (`bench_data.make_table`). Latency: {', '.join(map(str, args.latency_requests))} "
        "requests per system and size after a warm-up, in blocks alternating between the "
        f"systems. Throughput: {args.threads} client threads (own connection each), "
        f"{args.reps} windows of {args.window:g} s per system and size, alternating; MB/s "
        "is 10^6 bytes/s of the table's `nbytes`. Puts: "
        f"{', '.join(map(str, args.put_reps))} DoPuts per node and size until the PutResult, "
        "alternating. Memory: a fresh S3 node (`--no-disk-tier`) serves a "
        f"{f['rss_object']['label']} object "
        f"{args.rss_reps} times; VmHWM is reset (`/proc/PID/clear_refs`) before each hit "
        "and VmRSS sampled every 2 ms. That phase's s3proxy logs each request (debug level), "
        "which gives the S3 requests per hit and per put.",
        "",
        "### Results",
        "",
        markdown_table(main, COLUMNS),
        "",
        "Spread (min–max over blocks or windows):",
        "",
        *spread_lines([r for r in main if r.unit != "MiB"]),
        "",
        "Details:",
        "",
        *detail_lines(res, args),
        "",
        f"Requests per second of the larger objects ({args.threads} threads):",
        "",
        markdown_table([r for r in rows if r.diag], COLUMNS),
        "",
        *([f"Ratios (vs. embedded) across the {f['history_runs']} runs with these settings on "
           "this machine (min – median – max; raw results in `bench/results/`):", "",
           *history_lines(f["history_runs"], f["history"]), ""]
          if f.get("history_runs", 0) >= 3 else []),
        "### Analysis",
        "",
        analysis(res, rows, args),
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


def print_summary(res: dict, rows, args, runtime: float) -> None:
    print_goal_summary("Quiver S3 store", runtime, rows, COLUMNS, COLUMNS,
                       detail_lines(res, args), analysis(res, rows, args), res, medians=True)



def write_section(docs: Path, section: str) -> None:
    """Rewrite the section between the markers; the first time, put it (after a
    `## S3 store` heading) right after the shared-bench section, else at the end."""
    text = docs.read_text() if docs.exists() else ""
    if BEGIN_MARK in text and END_MARK in text:
        write_docs(docs, section, BEGIN_MARK, END_MARK, intro="# Benchmarks\n",
                   tmp_suffix=".s3-bench.tmp")
        return
    section = f"{HEADING}\n\n{section}"
    if AFTER_MARK in text:
        before, after = text.split(AFTER_MARK, 1)
        text = before + AFTER_MARK + "\n\n" + section.rstrip("\n") + "\n" + after
        tmp = docs.with_name(docs.name + ".s3-bench.tmp")
        tmp.write_text(text)
        tmp.replace(docs)
    else:
        write_docs(docs, section, BEGIN_MARK, END_MARK, intro="# Benchmarks\n",
                   tmp_suffix=".s3-bench.tmp")


def same_setup(args):
    keys = ("sizes", "latency_requests", "threads", "window", "put_reps", "rss_size", "quick")
    return lambda d: all(d["args"][k] == getattr(args, k) for k in keys)
