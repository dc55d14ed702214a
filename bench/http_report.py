"""The http-bench section of docs/benchmarks.md: bench/http_bench.py's write-up.

summarize turns a run's raw figures into HttpRow rows (one metric on Quiver's HTTP
interface, on nginx serving the same bytes and on Quiver's Flight interface, with the ratios
HTTP/nginx and HTTP/Flight); detail_lines and analysis word the rest from the figures;
docs_section renders the section between BEGIN_MARK and END_MARK, which write_section places
at the end of the file under HEADING the first time.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench_docs import (Column, Row, header_lines, history_lines, markdown_table, noise_note,
                        print_goal_summary, write_headed_section)
from bench_env import fmt_size, median, percentile, spread

BEGIN_MARK = "<!-- http-bench:begin -->"
END_MARK = "<!-- http-bench:end -->"
HEADING = "## HTTP: Quiver's HTTP interface vs. Flight and nginx"

HTTP, NGINX, FLIGHT = "Quiver HTTP", "nginx", "Quiver Flight"
PY, NATIVE = "Python clients", "native clients"


@dataclass
class HttpRow(Row):
    """quiver = Quiver HTTP, baseline = nginx (ratio = HTTP/nginx), flight = Quiver Flight."""
    flight: float | None = None
    f_spread: tuple[float, float] | None = None
    id: str = ""

    def fmt(self, v) -> str:
        if v is None or v != v:
            return "—"
        if self.unit == "GB/s":
            return f"{v:.2f}"
        if self.unit == "CPU-s/GB":
            return f"{v:.3f}"
        return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"

    @property
    def flight_ratio(self) -> float | None:
        if self.flight in (None, 0) or self.quiver != self.quiver or self.flight != self.flight:
            return None
        return self.quiver / self.flight


def _ratio(r: float | None, markdown: bool = False) -> str:
    if r is None:
        return "—"
    return f"**{r:.2f}×**" if markdown else f"{r:.2f}×"


COLUMNS = (
    Column("metric", lambda r: f"{r.metric} ({r.unit}, "
                               f"{'higher' if r.higher_is_better else 'lower'} better)", True),
    Column(HTTP, lambda r: r.fmt(r.quiver)),
    Column(NGINX, lambda r: r.fmt(r.baseline)),
    Column(FLIGHT, lambda r: r.fmt(r.flight)),
    Column("HTTP / nginx", lambda r: _ratio(r.ratio), md_cell=lambda r: _ratio(r.ratio, True)),
    Column("HTTP / Flight", lambda r: _ratio(r.flight_ratio),
           md_cell=lambda r: _ratio(r.flight_ratio, True)),
)


# ---------------------------------------------------------------------------------------
# Rows


def pooled(blocks):
    return [x for b in blocks for x in b]


def rates(res: dict, kind: str, name: str) -> list[float]:
    runs = res["raw"].get("throughput", {}).get(kind, {}).get(name, [])
    return [x["bytes"] / x["seconds"] / 1e9 for x in runs]


def per_gb(res: dict, kind: str, name: str, what: str) -> float | None:
    runs = res["raw"].get("throughput", {}).get(kind, {}).get(name, [])
    xs = [x[what] / (x["bytes"] / 1e9) for x in runs]
    return median(xs) if xs else None


def summarize(res: dict, args) -> list[HttpRow]:
    raw, f = res["raw"], res["facts"]
    rows = []
    for name, by in raw["latency_us"].items():
        label = f["objects"][name]["label"]
        for p in (50, 99):
            v = {s: percentile(pooled(by[s]), p) for s in (HTTP, NGINX, FLIGHT)}
            sp = {s: spread([percentile(b, p) for b in by[s]]) for s in (HTTP, NGINX, FLIGHT)}
            rows.append(HttpRow(f"GET {label}, p{p}", "µs", False, v[HTTP], v[NGINX],
                                sp[HTTP], sp[NGINX], flight=v[FLIGHT], f_spread=sp[FLIGHT],
                                id=f"lat{p}_{name}"))
    native = f.get("native_clients", {})
    tp = raw.get("throughput", {})
    for kind in tp:
        label = f["objects"][raw["throughput_object"][kind]]["label"]
        v = {s: rates(res, kind, s) for s in (HTTP, NGINX, FLIGHT)}
        what = ("http.client / pyarrow.flight" if kind == PY else
                f"{native.get(HTTP) or '—'} / {native.get(FLIGHT) or '—'}")
        rows.append(HttpRow(f"GET {label}, {kind.split(',')[0]} ({what})", "GB/s", True,
                            median(v[HTTP]) if v[HTTP] else None,
                            median(v[NGINX]) if v[NGINX] else None,
                            spread(v[HTTP]), spread(v[NGINX]),
                            flight=median(v[FLIGHT]) if v[FLIGHT] else None,
                            f_spread=spread(v[FLIGHT]), id=f"tp_{kind}"))
    # Diagnostics: where the CPU goes.
    for name, by in raw.get("latency_server_cpu_us", {}).items():
        label = f["objects"][name]["label"]
        rows.append(HttpRow(f"Server CPU per GET, {label} (schedstat)", "µs", False, by[HTTP],
                            by[NGINX], flight=by[FLIGHT], diag=True, id=f"cpu_{name}"))
    for kind in tp:
        label = f["objects"][raw["throughput_object"][kind]]["label"]
        for what, text in (("server_cpu_s", "Server"), ("client_cpu_s", "Client")):
            v = {s: per_gb(res, kind, s, what) for s in (HTTP, NGINX, FLIGHT)}
            rows.append(HttpRow(f"{text} CPU per GB, {label}, {kind.split(',')[0]}", "CPU-s/GB",
                                False,
                                v[HTTP], v[NGINX], flight=v[FLIGHT], diag=True,
                                id=f"{what}_{kind}"))
    return rows


def spread_lines(rows) -> list[str]:
    out = []
    for r in rows:
        parts = [f"{label} {r.fmt(s[0])}–{r.fmt(s[1])}"
                 for label, s in ((HTTP, r.q_spread), (NGINX, r.b_spread),
                                  (FLIGHT, r.f_spread)) if s]
        if parts:
            out.append(f"* {r.metric}: " + ", ".join(parts) + f" {r.unit}")
    return out


def detail_lines(res: dict, args) -> list[str]:
    raw, f = res["raw"], res["facts"]
    out = []
    for name, o in f["objects"].items():
        c = f.get("checks", {}).get(name, {})
        heads = c.get("headers", {})
        out.append(f"* {o['label']}: {o['rows']:,} rows, {o['batches']} batch"
                   f"{'es' if o['batches'] != 1 else ''}, {o['nbytes']:,} bytes of Arrow "
                   f"buffers, {o['ipc_bytes']:,} bytes as the stored IPC stream; both HTTP "
                   f"bodies byte-identical to it (sha256 {c.get('sha256', '?')[:12]}…)"
                   + (f"; Quiver sent `Transfer-Encoding: {heads[HTTP]['Transfer-Encoding']}`"
                      if "Transfer-Encoding" in heads.get(HTTP, {}) else "")
                   + (f", nginx `Content-Length: {heads[NGINX]['Content-Length']}`"
                      if "Content-Length" in heads.get(NGINX, {}) else ""))
    for name, by in raw["latency_us"].items():
        label = f["objects"][name]["label"]
        for a, b in ((HTTP, NGINX), (HTTP, FLIGHT)):
            rs = [percentile(x, 50) / percentile(y, 50) for x, y in zip(by[a], by[b])]
            out.append(f"* {label}, p50 {a} / {b} per turn (the systems' blocks of one turn "
                       f"ran back to back): median {median(rs):.2f}×, range "
                       f"{min(rs):.2f}–{max(rs):.2f}× over {len(rs)} turns")
    for kind, by in raw.get("throughput", {}).items():
        for name, runs in by.items():
            out.append(f"* {kind}, {name}: " + ", ".join(
                f"{x['bytes'] / x['seconds'] / 1e9:.2f}" for x in runs) + " GB/s")
    r0, r1 = f.get("resident_before", {}), f.get("resident_after", {})
    if r0:
        out.append(f"* Page cache: Quiver's file of the large object {r0['quiver']:.0%} "
                   f"resident before the transfers ({r1.get('quiver', float('nan')):.0%} "
                   f"after), nginx's copy {r0['nginx']:.0%} ({r1.get('nginx', float('nan')):.0%})")
    rec = f.get("reconnects", {})
    if any(rec.values()):
        out.append("* Connections the servers closed while idle (keep-alive timeout) and the "
                   "client opened again: " + ", ".join(f"{k} {v}" for k, v in rec.items()))
    disc = {k: v for k, v in f.get("discarded_for_noise", {}).items() if v}
    if disc:
        out.append("* Repetitions run again for noise: "
                   + ", ".join(f"{v} in {k}" for k, v in disc.items()))
    shares = f.get("phase_other_cpu_share", {})
    if shares:
        out.append("* Other work's share of the machine per phase: "
                   + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    sw = f.get("software", {})
    out.append(f"* Servers and clients: {sw.get('nginx', 'nginx ?')}; "
               f"{sw.get('curl') or 'no curl'}; C++ Flight client "
               f"{'bench/flight_load.cc' if sw.get('flight_load') else 'not run (not built)'}")
    return out


def _cmp(r: HttpRow, attr: str, other: str) -> str:
    """"1.23× nginx's 150 µs (slower)": a row's ratio to nginx (attr "baseline") or to
    Flight ("flight"), worded."""
    ratio = r.ratio if attr == "baseline" else r.flight_ratio
    value = getattr(r, attr)
    if ratio is None:
        return f"no {other} figure"
    better = (ratio > 1) == r.higher_is_better
    how = ("on a par" if 0.95 <= ratio <= 1.05 else ("faster" if better else "slower"))
    return f"{ratio:.2f}× {other}'s {r.fmt(value)} {r.unit} ({how})"


def analysis(res: dict, rows, args) -> str:
    f = res["facts"]
    by = {r.id: r for r in rows}
    noise = noise_note(res)
    t = [noise + "\n\n" if noise else ""]
    t.append("**Small objects.** ")
    for name in res["raw"]["latency_us"]:
        r50, r99 = by[f"lat50_{name}"], by[f"lat99_{name}"]
        t.append(f"{f['objects'][name]['label']}: Quiver HTTP p50 {r50.fmt(r50.quiver)} µs, "
                 f"{_cmp(r50, 'baseline', 'nginx')} and {_cmp(r50, 'flight', 'Flight')}; p99 "
                 f"{r99.fmt(r99.quiver)} µs against nginx {r99.fmt(r99.baseline)} and Flight "
                 f"{r99.fmt(r99.flight)}. ")
        cpu = by.get(f"cpu_{name}")
        if cpu:
            t.append(f"Server CPU per request: HTTP {cpu.fmt(cpu.quiver)} µs, nginx "
                     f"{cpu.fmt(cpu.baseline)} µs, Flight {cpu.fmt(cpu.flight)} µs. ")
    t.append("A small GET is one request and one response on a kept-alive connection for both "
             "HTTP servers; Quiver also looks the key up in its index and opens the entry, "
             "while nginx opens a file by path. Flight's DoGet is a gRPC call (HTTP/2 "
             "headers, the ticket, a stream of FlightData messages).")
    t.append("\n\n**The large object.** ")
    for kind in (PY, NATIVE):
        r = by.get(f"tp_{kind}")
        if r is None:
            continue
        t.append(f"With {kind}, Quiver HTTP moved {r.fmt(r.quiver)} GB/s, "
                 f"{_cmp(r, 'baseline', 'nginx')} and {_cmp(r, 'flight', 'Flight')}. ")
    s = by.get(f"server_cpu_s_{NATIVE}") or by.get(f"server_cpu_s_{PY}")
    c = by.get(f"client_cpu_s_{PY}")
    if s:
        t.append(f"Server CPU per GB sent: HTTP {s.fmt(s.quiver)}, nginx {s.fmt(s.baseline)}, "
                 f"Flight {s.fmt(s.flight)} CPU-s/GB. nginx hands the file to the kernel "
                 f"(`sendfile`: no copy through user space) with a `Content-Length`. Quiver's "
                 f"HTTP server writes the stored stream message by message through a 64 KiB "
                 f"coalescing buffer (larger buffers pass through) as chunked transfer "
                 f"encoding, and cpp-httplib 0.11 copies every write into a new string for its "
                 f"chunk (the payload, then size line + payload + CRLF): for a large batch, "
                 f"two or more copies into freshly allocated memory per byte sent. Flight "
                 f"sends each batch as gRPC messages over HTTP/2. ")
    if c:
        t.append(f"Client CPU per GB received with Python: http.client {c.fmt(c.quiver)} on "
                 f"Quiver's chunked body, {c.fmt(c.baseline)} on nginx's, pyarrow's Flight "
                 f"client {c.fmt(c.flight)}. ")
    fine = next((k for k in res["raw"].get("throughput", {}) if k.startswith(NATIVE + ",")),
                None)
    sf = by.get(f"server_cpu_s_{fine}") if fine else None
    rf = by.get(f"tp_{fine}") if fine else None
    sb = by.get(f"server_cpu_s_{NATIVE}")
    if sf and rf and sb:
        lab = f["objects"][res["raw"]["throughput_object"][fine]]["label"]
        t.append(f"The same path with small batches ({lab}): Quiver HTTP "
                 f"{rf.fmt(rf.quiver)} GB/s and {sf.fmt(sf.quiver)} server CPU-s/GB "
                 f"(against {sb.fmt(sb.quiver)} with the large batches), nginx "
                 f"{rf.fmt(rf.baseline)} GB/s, Flight {rf.fmt(rf.flight)} GB/s at "
                 f"{sf.fmt(sf.flight)} CPU-s/GB: ")
        if sb.quiver and sf.quiver and sb.quiver > 1.5 * sf.quiver:
            t.append("the HTTP server's cost per byte grows with the size of each write, which "
                     "points at the per-write chunk copies rather than at reading the stored "
                     "file; writing large messages in 64 KiB pieces (or, for an entry whose "
                     "size is known, a `Content-Length` body without chunking) would avoid "
                     "them. ")
        else:
            t.append("the batch size makes little difference to the HTTP server's cost per "
                     "byte. ")
    t.append("\n\n**Reading these figures.** Client, servers and the kernel's loopback share "
             f"the machine's {f['machine']['cores']} cores, so a transfer's rate is bounded by "
             "the CPU of both ends, not by a wire: the native-client rows (curl; the C++ "
             "Flight client) show the servers with the least client cost, the Python rows what "
             "a Python user gets. The machine is shared with other work and its speed varies "
             "between repetitions; the systems alternate turn by turn so that drift hits all "
             "three, the per-turn ratios in the details are the steadier comparison, and "
             "differences under ~10% are noise unless they repeat across runs.")
    return "".join(t)


def docs_section(res: dict, rows, args, command: str, runtime: float) -> str:
    f = res["facts"]
    main = [r for r in rows if not r.diag]
    hist = f.get("history")
    lines = [
        BEGIN_MARK,
        *header_lines(res, command, runtime, "bench/http_bench.py", "scripts/bench_http.sh"),
        "",
        "### Method",
        "",
        f"One `quiver serve --http 127.0.0.1:0` on a fresh data dir, and nginx "
        f"({f['software'].get('nginx', '?')}, started by the harness with its own config: "
        f"one process, `sendfile on`, `tcp_nopush on`, keep-alive, access log off) whose root "
        f"holds a copy of the file Quiver stored for each object: the same IPC stream bytes a "
        f"user would serve as a static file. Each object is put once over Flight; before any "
        f"timing, both HTTP bodies are checked byte-identical to the stored file (sha256) "
        f"and the decoded tables, and Flight's, equal to the table put.",
        "",
        f"1. **Hit latency** of {', '.join(fmt_size(s) for s in args.latency_sizes)} objects "
        f"(one batch each): `GET /v1/objects/KEY` and nginx's `GET /KEY.arrows` with Python's "
        f"`http.client` on one kept-alive connection, the body read into a preallocated buffer "
        f"and decoded into a table (zero-copy); Flight `DoGet` of the key with pyarrow "
        f"(`read_all`). {args.warmup} warm-up requests per system, then "
        f"{args.latency_requests:,} per system in blocks of 50, alternating between the "
        f"systems (order reversed every turn), garbage collector off. p50/p99 over all "
        f"requests; spread = range of the blocks' p50s (p99s for the p99 rows).",
        f"2. **Throughput** of a {f['objects']['big']['label']}, {args.reps} "
        f"transfers per system after one warm-up, alternating: with the Python clients above, "
        f"and with native clients: `curl -o /dev/null` (a process and a connection per "
        f"transfer, its own `time_total`) against both HTTP servers and the C++ Flight client "
        f"(`bench/flight_load.cc`, one stream, its own timing) against Flight. GB/s = "
        f"10^9 bytes of the IPC stream ({f['objects']['big']['ipc_bytes']:,} bytes) per "
        f"second; medians. A repetition during which other work used more than "
        f"{args.max_noise:.0%} of the machine is run again (at most {args.retries} per "
        f"phase)."
        + (f" The same with the native clients for a {fmt_size(args.fine_size)} object in "
           f"{fmt_size(args.fine_batch)} batches: how the servers' cost depends on the size "
           f"of each message." if args.fine_size else ""),
        "",
        "### Results",
        "",
        markdown_table(main, COLUMNS),
        "",
        "Spread (min–max of the latency blocks' p50 or p99, of the transfers):",
        "",
        *spread_lines(main),
        "",
        "Diagnostics (CPU seconds from /proc; a native client's server CPU per transfer):",
        "",
        markdown_table([r for r in rows if r.diag], COLUMNS),
        "",
        "Details:",
        "",
        *detail_lines(res, args),
        *(["", f"Ratio HTTP/nginx over the {f['history_runs']} runs with these sizes in "
               f"`bench/results/` (min – median – max):", "",
           *history_lines(f["history_runs"], hist)] if hist else []),
        "",
        "### Analysis",
        "",
        analysis(res, rows, args),
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


def print_summary(res: dict, rows, args, runtime: float) -> None:
    print_goal_summary("HTTP vs. Flight vs. nginx", runtime, rows, COLUMNS, COLUMNS,
                       detail_lines(res, args), analysis(res, rows, args), res)



def write_section(docs, section: str) -> None:
    write_headed_section(docs, section, BEGIN_MARK, END_MARK, HEADING, "http-bench")


def same_setup(args):
    keys = ("size", "batch", "latency_sizes", "latency_requests", "reps", "quick")
    return lambda d: all(d["args"][k] == getattr(args, k) for k in keys)
