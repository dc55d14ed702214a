"""The shared-bench section of docs/benchmarks.md: bench/shared_bench.py's write-up.

summarize turns a run's raw figures into rows (SharedRow, a bench_docs.Row: the shared-mode
figure in `quiver`, the baseline measured in the same run in `baseline`); bench_docs renders
them in this harness's COLUMNS (value | baseline | ratio | difference | baseline is) with
SharedRow's formatting; detail_lines and cross_node_table give the per-repetition figures;
analysis words the discussion from the figures; docs_section renders the whole section
between BEGIN_MARK and END_MARK (docs/benchmarks.md keeps a `## Shared mode` heading before
it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench_docs import (Column, Row, history_lines, markdown_table, spread_lines,
                        print_goal_summary, write_docs)
from bench_env import WAITED, median, percentile, spread

BEGIN_MARK = "<!-- shared-bench:begin -->"
END_MARK = "<!-- shared-bench:end -->"
HEADING = "## Shared mode"


@dataclass
class SharedRow(Row):
    id: str = ""
    baseline_name: str = ""
    show_ratio: bool = True   # False where a ratio means nothing (signed offsets, counts)
    expected: str = ""        # for counts: what a correct run gives
    ok: bool | None = None    # whether the count is what it should be

    quiver_label = ""  # the spread lines read "lo–hi vs. <baseline_name> lo–hi"
    spread_joiner = " vs. "

    @property
    def baseline_label(self) -> str:
        return self.baseline_name

    @property
    def ratio(self):
        return Row.ratio.fget(self) if self.show_ratio else None

    def fmt(self, v, signed=False) -> str:
        if v is None or v != v:
            return "—"
        if self.unit == "count":
            return f"{v:g}"
        if self.unit in ("req/s", "µs"):
            return f"{v:+,.0f}" if signed else f"{v:,.0f}"
        digits = 3 if abs(v) < 10 else 1
        return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"

    # -- the table's cells (a count has no baseline: what it should be instead)

    def metric_cell(self) -> str:
        if self.unit == "count":
            return self.metric
        better = "higher" if self.higher_is_better else "lower"
        return f"{self.metric} ({self.unit}, {better} better)"

    def ratio_cell(self, markdown=False) -> str:
        r = self.ratio
        if self.baseline is None or r is None:
            return "—"
        text = f"{r:.3f}×" if r < 0.1 else f"{r:.2f}×"
        return f"**{text}**" if markdown else text

    def difference_cell(self) -> str:
        if self.baseline is None:
            return "—"
        return f"{self.fmt(self.quiver - self.baseline, signed=True)} {self.unit}"

    def baseline_cell(self) -> str:
        if self.baseline is not None:
            return self.baseline_name
        if not self.expected:
            return ""
        return f"expected {self.expected}: {'ok' if self.ok else 'NOT AS EXPECTED'}"


COLUMNS = (
    Column("metric", SharedRow.metric_cell, text=True),
    Column("value", lambda r: r.fmt(r.quiver)),
    Column("baseline", lambda r: r.fmt(r.baseline)),
    Column("ratio", SharedRow.ratio_cell, md_cell=lambda r: r.ratio_cell(markdown=True)),
    Column("difference", SharedRow.difference_cell),
    Column("baseline is", SharedRow.baseline_cell, text=True),
)


def summarize(res: dict, args) -> list[SharedRow]:
    raw, f = res["raw"], res["facts"]
    rows = []
    kinds = f["kinds"]
    for kind, label in kinds.items():
        blocks = {t: raw["latency_blocks_ms"][t][kind] for t in ("shared", "embedded")}
        pooled = {t: [x for b in v for x in b] for t, v in blocks.items()}
        p50s = {t: [percentile(b, 50) for b in v] for t, v in blocks.items()}
        for p in (50, 99):
            rows.append(SharedRow(
                f"{label}, p{p}", "ms", False, percentile(pooled["shared"], p),
                percentile(pooled["embedded"], p),
                spread(p50s["shared"]) if p == 50 else None,
                spread(p50s["embedded"]) if p == 50 else None,
                id=f"lat_{kind}_p{p}", baseline_name="embedded"))
    for kind in raw.get("throughput", {}).get("shared", {}):
        rps = {t: [x["rps"] for x in raw["throughput"][t][kind]] for t in ("shared", "embedded")}
        rows.append(SharedRow(
            f"{kinds[kind]}, {args.threads} client threads", "req/s", True,
            median(rps["shared"]), median(rps["embedded"]), spread(rps["shared"]),
            spread(rps["embedded"]), id=f"tput_{kind}", baseline_name="embedded"))
        cpu = {t: [x["server_cpu_s"] / x["requests"] * 1e6 for x in raw["throughput"][t][kind]]
               for t in ("shared", "embedded")}
        rows.append(SharedRow(
            f"Server-side CPU per request, {kinds[kind]}, {args.threads} threads", "µs",
            False, median(cpu["shared"]),
            median(cpu["embedded"]), spread(cpu["shared"]), spread(cpu["embedded"]),
            diag=True, id=f"cpu_{kind}", baseline_name="embedded"))

    st = raw.get("stampede")
    if st and st["crowd"]:
        crowd, lone = st["crowd"], st["lone"]
        n_nodes, clients = len(crowd[0]["nodes"]), crowd[0]["clients"]
        execs = [sum(c["executions_by_key"]) for c in crowd]
        db = [c["db_executions"] for c in crowd]
        joins = [sum(c["remote_joins"]) for c in crowd]
        rows.append(SharedRow("Stampede: executions of the key (nodes' stats, worst rep.)",
                              "count", False, max(execs), None,
                              id="stampede_exec", show_ratio=False, expected="1",
                              ok=all(e == 1 for e in execs)))
        rows.append(SharedRow("Stampede: executions counted by PostgreSQL (worst rep.)",
                              "count", False, max(db), None, id="stampede_db",
                              show_ratio=False, expected="1", ok=all(e == 1 for e in db)))
        rows.append(SharedRow("Stampede: nodes streaming the fill live (remote_joins, "
                              "fewest)", "count", True,
                              min(joins), None, id="stampede_joins", show_ratio=False,
                              expected=str(n_nodes - 1),
                              ok=all(j == n_nodes - 1 for j in joins)))
        slow, lone_s = [c["slowest_s"] for c in crowd], [x["slowest_s"] for x in lone]
        rows.append(SharedRow(f"Stampede: slowest of {clients} clients on {n_nodes} nodes",
                              "s", False,
                              median(slow), median(lone_s), spread(slow), spread(lone_s),
                              id="stampede_time", baseline_name="lone miss, fresh key"))
    cn = raw.get("cross_node")
    if cn and cn["live"] and cn["wait"]:
        for field, label, ratio in (
                ("b_first_minus_a_end_s", "Cross-node: B's 1st batch − A's fill end", False),
                ("b_wait_for_first_s", "Cross-node: B's wait for its 1st batch", True),
                ("b_end_minus_a_end_s", "Cross-node: B's end − A's fill end", False)):
            lv, wt = [x[field] for x in cn["live"]], [x[field] for x in cn["wait"]]
            rows.append(SharedRow(f"{label}", "s", False, median(lv), median(wt), spread(lv),
                                  spread(wt), id=f"cross_{field}", show_ratio=ratio,
                                  baseline_name="live_join false (value: true)"))
    return rows


# ---------------------------------------------------------------------------------------
# Tables


def cross_node_table(res: dict, markdown: bool) -> str:
    head = ["rep", "live_join", "A 1st batch", "A fill end", "B asks", "B 1st batch",
            "B 1st − A end", "B end − A end", "B's node: remote_joins/waits",
            "executions (stats/db)"]
    body = []
    cn = res["raw"]["cross_node"]
    for mode in ("live", "wait"):
        for i, x in enumerate(cn[mode]):
            body.append([str(i + 1), "true" if mode == "live" else "false",
                         f"{x['a_first_s']:.3f}", f"{x['a_end_s']:.3f}", f"{x['b_asked_s']:.3f}",
                         f"{x['b_first_s']:.3f}", f"{x['b_first_minus_a_end_s']:+.3f}",
                         f"{x['b_end_minus_a_end_s']:+.3f}",
                         f"{x['b_remote_joins']}/{x['b_waits']}",
                         f"{x['executions']}/{x['db_executions']}"])
        xs = cn[mode]
        body.append(["median", "true" if mode == "live" else "false"]
                    + [f"{median([x[k] for x in xs]):{'+' if 'minus' in k else ''}.3f}"
                       for k in ("a_first_s", "a_end_s", "b_asked_s", "b_first_s",
                                 "b_first_minus_a_end_s", "b_end_minus_a_end_s")] + ["", ""])
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |",
                          "|" + "---:|" * len(head)]
                         + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    return "\n".join(" | ".join(c.rjust(w) for c, w in zip(b, widths)) for b in [head] + body)


def redis_round_trips(x: dict, where: str) -> str:
    """'2.00 commands (EVALSHA 2.00)' for one part of a redis_trace result."""
    part = x[where]
    names = ", ".join(f"{k} {v:.2f}" for k, v in sorted(part.items(), key=lambda kv: -kv[1]))
    return f"{sum(part.values()):.2f} commands" + (f" ({names})" if names else "")


def detail_lines(res: dict, args) -> list[str]:
    raw, f = res["raw"], res["facts"]
    out = []
    trace = raw.get("redis_per_request", {})
    cpu = raw.get("latency_server_cpu_us", {})
    for kind, label in f["kinds"].items():
        x = trace.get(kind)
        if x is None:
            continue
        out.append(f"* {label}: per request the shared node sent {redis_round_trips(x, 'during')}"
                   f" to Redis while the request was under way and "
                   f"{redis_round_trips(x, 'after')} after it had returned; Lua scripts ran "
                   f"{redis_round_trips(x, 'in_scripts')} inside Redis (MONITOR over "
                   f"{x['requests']} requests, untimed). Server-side CPU per request in the "
                   f"latency phase: {cpu['shared'][kind]:.0f} µs shared (both nodes + "
                   f"redis-server) vs. {cpu['embedded'][kind]:.0f} µs embedded (/proc, 10 ms "
                   f"ticks).")
    for kind, calls in raw.get("throughput_redis_calls_per_request", {}).items():
        top = ", ".join(f"{k} {v:.2f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1])
                        if v >= 0.005)
        out.append(f"* {f['kinds'][kind]}, {args.threads} threads: Redis calls per request "
                   f"through the shared node (INFO commandstats over the windows; commands "
                   f"run by scripts counted under their own names): {top}.")
    first = f.get("first_read_after_fill", {})
    for name, x in first.items():
        m = x["first"]
        out.append(f"* Right after the filling client's stream of the hit query ended, the "
                   f"first read through the {name} server was a {m.get('cache')}"
                   + (" that joined the fill" if m.get("joined") else "")
                   + f" (node {m.get('node')}); it was a hit after {x['reads_until_hit']} "
                     f"read(s), {x['seconds_until_hit'] * 1000:.0f} ms.")
    st = raw.get("stampede")
    if st and st["crowd"]:
        for i, c in enumerate(st["crowd"]):
            lone = st["lone"][i] if i < len(st["lone"]) else None
            out.append(
                f"* Stampede {i + 1}: slowest {c['slowest_s']:.3f} s, median client "
                f"{c['median_client_s']:.3f} s, fastest {c['fastest_s']:.3f} s"
                + (f" (lone miss on {lone['nodes'][0]}: {lone['slowest_s']:.3f} s)"
                   if lone else "")
                + f"; first batches {c['first_batch_min_s']:.3f}–{c['first_batch_max_s']:.3f} s; "
                f"executions per node {c['executions_by_key']}, PostgreSQL {c['db_executions']}; "
                f"remote_joins per node {c['remote_joins']}, waits {c['waits']}; responses "
                + ", ".join(f"{v} {k}" for k, v in sorted(c["responses"].items()))
                + f"; results {'identical' if c['identical'] else 'NOT identical'}; node CPU "
                + ", ".join(f"{x:.2f}" for x in c["node_cpu_s"]) + " s.")
    return out


# ---------------------------------------------------------------------------------------
# Analysis


def span(values, spec: str) -> str:
    """'2.0' if all values print alike, else 'min–max'."""
    lo, hi = format(min(values), spec), format(max(values), spec)
    return lo if lo == hi else f"{lo}–{hi}"


def analysis(res: dict, rows, args) -> str:
    f, raw = res["facts"], res["raw"]
    by = {r.id: r for r in rows}
    paras = []

    lat = [by[f"lat_{k}_p50"] for k in f["kinds"]]
    added = [r.quiver - r.baseline for r in lat]
    ratios = [r.ratio for r in lat]
    labels = list(f["kinds"].values())
    t = ("**Hits through a shared node.** At the median, a hit through one node of a 2-node "
         "cluster took " + ", ".join(f"{r.quiver:.3f} ms ({lab})" for r, lab in zip(lat, labels))
         + " against " + ", ".join(f"{r.baseline:.3f} ms" for r in lat)
         + f" on the embedded server: {span(ratios, '.2f')}× the embedded time, "
         + (f"{span([a * 1000 for a in added], '.0f')} µs more per request. "
            if min(added) > 0 else
            f"{span([a * 1000 for a in added], '+.0f')} µs per request. "))
    trace = raw.get("redis_per_request", {})
    if trace:
        during = {k: sum(x["during"].values()) for k, x in trace.items()}
        after = {k: sum(x["after"].values()) for k, x in trace.items()}
        inner = {k: sum(x["in_scripts"].values()) for k, x in trace.items()}
        t += (f"The only difference between the two servers is the shared index: per hit the "
              f"node made {span(during.values(), '.1f')} Redis round trips while the request "
              f"was under way and {span(after.values(), '.1f')} after it had returned, running "
              f"{span(inner.values(), '.0f')} commands inside Lua scripts (MONITOR; a round "
              f"trip made while the request is under way may still run beside the response "
              f"rather than before it). ")
    p99 = [by[f"lat_{k}_p99"] for k in f["kinds"]]
    t += ("At p99 the shared node took " + ", ".join(
        f"{r.quiver:.3f} vs. {r.baseline:.3f} ms" for r in p99) + ". ")
    tput = [r for r in rows if r.id.startswith("tput_")]
    if tput:
        t += (f"With {args.threads} client threads the shared node served "
              + "; ".join(f"{r.metric.rsplit(',', 1)[0]}: {r.quiver:,.0f} req/s against "
                          f"{r.baseline:,.0f} embedded ({r.ratio:.2f}×)" for r in tput)
              + ". ")
        conc = raw.get("throughput_redis_calls_per_request", {})
        evals = {k: v.get("EVALSHA", 0) for k, v in conc.items()}
        seq = {k: x["during"].get("EVALSHA", 0) + x["after"].get("EVALSHA", 0)
               for k, x in trace.items()}
        if evals and seq:
            fewer = [f["kinds"][k] for k in evals if k in seq and evals[k] < 0.9 * seq[k]]
            t += (f"Under that concurrency the node called Redis scripts "
                  f"{span(evals.values(), '.2f')} times per request (INFO commandstats), "
                  f"against {span(seq.values(), '.2f')} for sequential requests"
                  + (f"; for {' and '.join(fewer)} some calls served several requests. "
                     if fewer else ". "))
        cpu = [r for r in rows if r.id.startswith("cpu_")]
        if cpu:
            t += ("Server-side CPU per request (the nodes and redis-server for shared mode) was "
                  + ", ".join(f"{r.quiver:.0f} vs. {r.baseline:.0f} µs" for r in cpu)
                  + f"; on {f['machine']['cores']} cores the Python client threads share the "
                    f"CPU with the servers, so throughput is bounded by the client as much as "
                    f"by the server. ")
    paras.append(t)

    if "stampede_exec" in by:
        ex, db, jn, tm = (by["stampede_exec"], by["stampede_db"], by["stampede_joins"],
                          by["stampede_time"])
        crowd = raw["stampede"]["crowd"]
        clients, n_nodes = crowd[0]["clients"], len(crowd[0]["nodes"])
        t = (f"**Stampede on {n_nodes} nodes.** In each of {len(crowd)} repetitions "
             f"{clients} clients ({crowd[0]['per_node']} per node) asked for the same "
             f"uncached PostgreSQL query (about {f['stampede_query_s']:.1f} s of pg_sleep) "
             f"at once. ")
        if ex.ok and db.ok:
            t += ("The key executed exactly once in every repetition, by the nodes' "
                  "counters and by the database's own count. ")
        else:
            t += (f"**Unexpected: the key executed more than once** (worst repetition: "
                  f"{ex.quiver:g} executions by the nodes' counters, {db.quiver:g} by "
                  f"PostgreSQL). ")
        js = [sum(c["remote_joins"]) for c in crowd]
        t += (f"The nodes that did not execute it streamed it live from the executing node "
              f"(remote_joins {', '.join(str(j) for j in js)}; {n_nodes - 1} expected)"
              + ("" if jn.ok else ": **fewer than expected — some node waited for the "
                                  "published result instead**") + ". ")
        t += (f"The slowest client finished after {tm.quiver:.3f} s against {tm.baseline:.3f} s "
              f"for a lone miss of the same query on a fresh key ({tm.ratio:.2f}×, "
              f"{(tm.quiver - tm.baseline) * 1000:+.0f} ms)")
        t += (", i.e. the fan-out to the other nodes and clients adds little to the query "
              "itself. " if tm.ratio <= 1.1 else
              ": the fan-out to the other nodes and clients costs measurably on this "
              "machine. ")
        if not all(c["identical"] for c in crowd):
            t += "**Unexpected: the clients' results were not all identical.** "
        paras.append(t)

    if "cross_b_first_minus_a_end_s" in by:
        off, wait_ = by["cross_b_first_minus_a_end_s"], by["cross_b_wait_for_first_s"]
        cn = raw["cross_node"]
        t = (f"**Cross-node first batch.** Node A's client started a streaming query of about "
             f"{f['stream_query_s']:.1f} s ({cn['live'][0]['batches_a']} batches); as soon as "
             f"its first batch arrived, a client of node B asked for the same query. With "
             f"live join, B's first batch came {wait_.quiver * 1000:.0f} ms after it asked "
             f"(median of {len(cn['live'])}), {-off.quiver:.2f} s before A's fill ended"
             if off.quiver < 0 else
             f"**Cross-node first batch.** With live join, B's first batch came "
             f"{off.quiver * 1000:+.0f} ms relative to A's fill end (median): "
             f"**unexpected: not before the fill ended**")
        poll = f.get("fill_poll_s", 0.2)
        t += (f"; with `live_join` false it came {off.baseline * 1000:+.0f} ms relative to "
              f"A's fill end, {wait_.baseline:.2f} s after B asked, once the result was "
              f"published")
        t += (f" — sooner after the end than the `fill_poll_s` interval ({poll:g} s) at "
              f"which a waiting node checks the index, so the publish itself woke it. "
              if 0 <= off.baseline < poll / 2 else
              f" (a waiting node checks the index every `fill_poll_s`, {poll:g} s). ")
        early = [x["b_first_minus_a_end_s"] < 0 for x in cn["live"]]
        late = [x["b_first_minus_a_end_s"] >= -0.05 for x in cn["wait"]]
        if all(early) and all(late):
            t += (f"Every repetition agrees: live join gave B its first batch "
                  f"{wait_.baseline / max(wait_.quiver, 1e-6):.0f}× sooner. ")
        else:
            t += (f"**Not every repetition agrees**: {sum(early)} of {len(early)} live-join "
                  f"repetitions had B's first batch before A's fill ended, and "
                  f"{sum(late)} of {len(late)} waiting repetitions had it only at the end "
                  f"or after. ")
        ends = by["cross_b_end_minus_a_end_s"]
        t += (f"Either way B's stream ended close to A's ({ends.quiver * 1000:+.0f} ms live, "
              f"{ends.baseline * 1000:+.0f} ms waiting): live join moves the first batch, "
              f"not the last.")
        paras.append(t)

    other = f.get("other_cpu_share", 0)
    noisy = {k: v for k, v in f.get("phase_other_cpu_share", {}).items() if v > 0.10}
    if other > 0.05 or noisy:
        t = (f"**Noise.** Other work on the machine used {other:.0%} of its CPU during this "
             f"run")
        if noisy:
            t += ", more during " + ", ".join(f"{k} ({v:.0%})" for k, v in noisy.items())
        t += (". The measurements compared alternate (blocks of requests, windows, "
              "repetitions), so both sides carry that noise; the spreads show how much the "
              "repetitions varied. The stampede and cross-node figures are set by the "
              "query's pg_sleep pauses more than by CPU.")
        paras.append(t)
    return "\n\n".join(p.strip() for p in paras)


# ---------------------------------------------------------------------------------------
# The docs section and the terminal summary


def docs_section(res: dict, rows, args, command: str, runtime: float) -> str:
    f, m, s = res["facts"], res["facts"]["machine"], res["facts"]["software"]
    disc = {k: v for k, v in f.get("discarded_for_noise", {}).items() if v}
    main = [r for r in rows if not r.diag]
    lines = [
        BEGIN_MARK,
        "_Written by `bench/shared_bench.py` (`scripts/bench_shared.sh`); do not edit by hand "
        "between the markers._",
        "",
        f"* Date: {f.get('date_utc')}",
        f"* Command: `{command}` (the run took {runtime:.0f} s"
        + (f", of which {WAITED['wall']:.0f} s waiting for the machine to go idle)"
           if WAITED["wall"] >= 1 else ")"),
        f"* Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, kernel {m['kernel']} "
        f"({m['os']}); load average at start {f['load_start']}, at end {f['load_end']}; CPU "
        f"used by other work during the run {f.get('other_cpu_share', 0):.0%} of the machine",
        f"* Software: {s['quiver']} at commit {m['quiver_commit']}; binary "
        f"{f['quiver_binary']['path']} (sha256 {f['quiver_binary']['sha256']}); "
        f"redis-server {s['redis']}, PostgreSQL {s['postgresql']}, Python {m['python']}, "
        f"pyarrow {m['pyarrow']}",
        f"* Data dirs: {m['data_dir_fs']}",
        "",
        "### Method",
        "",
        f"Everything runs on this machine: one redis-server (no persistence), one PostgreSQL "
        f"cluster (source `pg`, ADBC driver, `batch_size_hint_bytes` 65536), and `quiver "
        f"serve` processes. A shared-mode node is `quiver serve --index redis://... "
        f"--index-prefix P --node-id NAME` on a data dir shared with its cluster's other "
        f"nodes; the embedded server has no `--index`. Clients are pyarrow Flight clients in "
        f"the harness over loopback.",
        "",
        f"1. **Hits** (embedded server vs. node 0 of a 2-node cluster, both running; the "
        f"objects were put and the query filled through node 1, so node 0 reads what another "
        f"node wrote): DoGet of a {f['kinds_detail']}. {args.latency_requests} sequential "
        f"requests per kind and server after 50 warm-up requests, in blocks of 50 "
        f"alternating between the servers, garbage collector off; p50/p99 over all of them, "
        f"spread = range of the blocks' medians. Throughput: {args.threads} threads, each "
        f"with its own connection, request in a loop for {args.window:g} s; "
        f"{args.reps} windows per server, alternating; a window during which other work "
        f"used more than {args.max_noise:.0%} of the machine is run again"
        + (f" (discarded: {', '.join(f'{v} in {k}' for k, v in disc.items())})" if disc
           else " (none was)") + ". No request of these phases was a miss (checked with "
        f"the `stats` counters).",
        f"2. **Stampede**: 3-node cluster; a new uncached query (about "
        f"{f['stampede_query_s']:.1f} s: pg_sleep pauses between {f['stampede_rows']:,} "
        f"generated rows; it inserts a row into a table on each execution, which is how the "
        f"database counts them) from {args.clients_per_node} clients per node, each with its "
        f"own connection (connected beforehand), released by a barrier; {args.reps} "
        f"repetitions alternating with a lone miss of the same query on a fresh key through "
        f"one node (rotating), read by the same code. Executions: the key's "
        f"`executions_by_key` summed over the nodes' `stats`, and the database's count; "
        f"`remote_joins` summed over the nodes.",
        f"3. **Cross-node first batch**: node A's client asks for a new streaming query "
        f"(about {f['stream_query_s']:.1f} s, {f['stream_rows']:,} rows with "
        f"{f['stream_pauses']} pauses); once its first batch arrived a client of node B "
        f"asks for the same query. Two clusters, identical but for `live_join` (true: the "
        f"3-node cluster above; false: a 2-node cluster); {args.reps} repetitions each, "
        f"alternating. Times are from A's request (perf_counter in the harness); \"A fill "
        f"end\" is when A's client got the end of its stream.",
        "",
        "### Results",
        "",
        markdown_table(main, COLUMNS),
        "",
        "Spread (min–max over repetitions):",
        "",
        *spread_lines(main),
        "",
        "Cross-node first batch, per repetition (seconds from A's request):",
        "",
        cross_node_table(res, markdown=True),
        "",
        "Details:",
        "",
        *detail_lines(res, args),
        "",
        "Where the CPU goes (medians over the throughput windows; user+system CPU from /proc "
        "of the embedded server, or of both nodes and redis-server, per request):",
        "",
        markdown_table([r for r in rows if r.diag], COLUMNS),
        "",
        *([f"Ratios across the {f['history_runs']} runs with these settings on this machine "
           f"(min – median – max; raw results in `bench/results/`, not committed):", "",
           *history_lines(f["history_runs"], f["history"]), ""]
          if f.get("history_runs", 0) >= 3 else []),
        "### Analysis",
        "",
        analysis(res, rows, args),
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


def print_summary(res: dict, rows, args, runtime: float) -> None:
    print_goal_summary("Quiver shared mode", runtime, rows, COLUMNS, COLUMNS,
                       detail_lines(res, args), analysis(res, rows, args), res,
                       extra=["\nCross-node first batch, per repetition (seconds from A's request):", cross_node_table(res, markdown=False)], medians=True)



def write_section(docs: Path, section: str) -> None:
    """Rewrite the section between the markers; the first time, append it after a
    `## Shared mode` heading."""
    text = docs.read_text() if docs.exists() else ""
    if BEGIN_MARK not in text or END_MARK not in text:
        section = f"{HEADING}\n\n{section}"
    write_docs(docs, section, BEGIN_MARK, END_MARK, intro="# Benchmarks\n",
               tmp_suffix=".shared-bench.tmp")


def same_setup(args):
    keys = ("latency_requests", "threads", "window", "clients_per_node", "stampede_s",
            "stream_s", "quick")
    return lambda d: all(d["args"][k] == getattr(args, k) for k in keys)
