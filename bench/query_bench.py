#!/usr/bin/env python3
"""Query-cache benchmark: Quiver's query cache against reading the database directly.

One run starts `quiver serve` on a fresh data dir with the demo SQLite database as source
`demo`, opens the same database directly with the same ADBC driver
(adbc_driver_sqlite.dbapi, same `adbc.sqlite.query.batch_rows` = 65536 as the server), and
measures, alternating between the two so that machine noise hits both:

  * miss overhead: streaming a large result (every row of `events`) through Quiver on a
    cache miss vs. reading it directly (goal: Quiver / direct <= 1.05); the same for a
    small-result aggregate, for information;
  * hit speedup: a cached heavy aggregate and a cached large scan vs. running them
    directly (speedup = direct / hit);
  * stampede: N (default 64) concurrent identical misses, each from its own Flight client
    and thread, released together by a barrier: the key must execute exactly once, all N
    results must be identical (and equal to the direct result), and the slowest client
    should finish within 1.2x of a lone miss of an equivalent query (another key) timed in
    the same run. Done for the aggregate and for the large scan.

Every measured miss uses a new cache key for the same work (`... WHERE id > ?` with
params [-1], [-2], ...: all rows every time). Clients consume the whole stream. Figures
are medians after a warm-up (database file read into the page cache, one direct read and
one miss of each query). It prints a table (metric | quiver | direct | ratio | goal |
met?), writes the raw numbers to bench/results/query-bench-<time>.json (git-ignored) and
rewrites the query-bench section of docs/benchmarks.md (not with --quick unless --docs is
given).

Run it with scripts/bench_queries.sh [ARGS] (sets up and builds first) or directly with
.venv/bin/python bench/query_bench.py [ARGS].
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared bench_* modules

import bench_env  # noqa: E402
from bench_docs import write_docs  # noqa: E402
from bench_env import (Phase, log, machine_details, resident_fraction,  # noqa: E402
                       wait_for_idle_accounted)
from bench_run import (RunClock, add_output_args, command_line, load_results,  # noqa: E402
                       results_path, save_results)
from bench_servers import QuiverProcess, snapshot_binary  # noqa: E402
from query_reads import (AGG_SQL, BATCH_ROWS, SCAN_ALL_SQL, SCAN_SQL, Reference,  # noqa: E402
                         direct_read, lone_miss, quiver_read, server_exec_ms, stampede, strip,
                         wait_published, with_cpu)
from query_report import (BEGIN_MARK, END_MARK, DOCS_TITLE, docs_section,  # noqa: E402
                          print_summary, summarize)

bench_env.LOG_NAME = "query-bench"

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
DEFAULT_DOCS = ROOT / "docs" / "benchmarks.md"
DEFAULT_DB = ROOT / "build" / "demo.db"


# ---------------------------------------------------------------------------------------
# Machine state


def read_file_into_page_cache(path: Path) -> None:
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass


def query_machine_details(data_dir: Path) -> dict:
    """bench_env.machine_details under the keys this harness's results files use."""
    m = machine_details(data_dir)
    return {"cpu": m["cpu"], "cores": m["cores"], "ram": m["ram"], "kernel": m["kernel"],
            "os": m["os"], "data_dir_fs": m["data_dir_fs"], "commit": m["quiver_commit"]}


def software_versions(binary: Path, con) -> dict:
    import adbc_driver_manager
    import adbc_driver_sqlite
    try:
        quiver = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                                timeout=30).stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        quiver = "unknown"
    cur = con.cursor()
    cur.execute("SELECT sqlite_version()")
    sqlite_version = cur.fetchone()[0]
    cur.close()
    return {"python": platform.python_version(), "pyarrow": pa.__version__,
            "numpy": np.__version__, "adbc_driver_manager": adbc_driver_manager.__version__,
            "adbc_driver_sqlite": adbc_driver_sqlite.__version__, "sqlite": sqlite_version,
            "quiver": quiver}


# ---------------------------------------------------------------------------------------
# The server


class QuiverServer(QuiverProcess):
    """`quiver serve` on a free loopback port with the database as source `demo`."""

    def __init__(self, binary: Path, work: Path, db: Path, max_queue: int):
        self.data_dir = work / "data"
        self.config = work / "quiver.json"
        self.config.write_text(json.dumps({
            "sources": {"demo": {"driver": "sqlite", "uri": str(db), "max_concurrent": 4,
                                 "max_queue": max_queue}}}, indent=2))
        super().__init__("quiver", binary, self.data_dir, work / "quiver.log",
                         ["--config", str(self.config)], cwd=work)


# ---------------------------------------------------------------------------------------
# The run


class Params:
    """Distinct negative parameters: each one a new cache key for the same rows."""

    def __init__(self):
        self.n = 0

    def next(self) -> list:
        self.n += 1
        return [-self.n]


def miss_overhead(args, server, con, sql, ref, req, p, expect) -> dict:
    direct, misses = [], []
    for rep in range(args.reps):
        order = ("direct", "quiver") if rep % 2 == 0 else ("quiver", "direct")
        for who in order:
            if who == "direct":
                direct.append(strip(with_cpu(server, direct_read, con, sql, [-1])))
            else:
                request = req(sql, p.next())
                m = expect(with_cpu(server, quiver_read, server.client, request),
                           "miss", "miss overhead")
                m["exec_ms"] = server_exec_ms(server.client, request)
                m["equal_to_direct"] = m["table"].equals(ref.table)
                if not m["equal_to_direct"]:
                    raise RuntimeError(f"Quiver's miss of {sql!r} differs from direct")
                misses.append(strip(m))
            time.sleep(0.2)
    return {"direct": direct, "quiver": misses}


def hit_scan(args, server, con, req, expect) -> dict:
    ref_all = Reference(direct_read(con, SCAN_ALL_SQL, None)["table"])
    m = expect(quiver_read(server.client, req(SCAN_ALL_SQL)), "miss", "scan-all warm-up")
    if not m["table"].equals(ref_all.table):
        raise RuntimeError("Quiver's result of SELECT * FROM events differs from direct")
    wait_published(server, m["meta"]["key"])
    del m
    direct, hits = [], []
    per_direct = max(1, args.hit_reps // args.reps)
    for _ in range(args.reps):
        direct.append(strip(with_cpu(server, direct_read, con, SCAN_ALL_SQL, None)))
        for _ in range(per_direct):
            h = expect(with_cpu(server, quiver_read, server.client, req(SCAN_ALL_SQL)),
                       "hit", "hit")
            h["equal_to_direct"] = h["table"].equals(ref_all.table)
            if not h["equal_to_direct"]:
                raise RuntimeError("Quiver's cached SELECT * FROM events differs from direct")
            hits.append(strip(h))
    return {"direct": direct, "quiver": hits}


def run(args, work: Path) -> dict:
    import adbc_driver_sqlite.dbapi as dbapi

    res: dict = {"raw": {}, "facts": {}}
    raw, facts = res["raw"], res["facts"]
    binary = work / "quiver"
    snapshot_binary(Path(args.quiver), binary, attempts=60)

    # The database: a private copy (or a small generated one with --quick).
    db = work / "demo.db"
    if args.db:
        log(f"copying {args.db} to the work dir")
        shutil.copy2(args.db, db)
    else:
        log(f"generating a demo database with {args.rows:,} rows")
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_demo_db.py"), str(db),
                        "--rows", str(args.rows)], check=True, stdout=subprocess.DEVNULL)
    facts["db_bytes"] = db.stat().st_size
    read_file_into_page_cache(db)
    facts["db_resident_after_warming"] = resident_fraction(db)

    con = dbapi.connect(str(db))
    facts["software"] = software_versions(binary, con)
    facts["machine"] = query_machine_details(work)
    server = QuiverServer(binary, work, db, max_queue=max(64, args.clients + 8))
    facts["server_log"] = str(server.log_path)
    p = Params()

    def req(sql, params=None):
        # A long TTL: the hits must still find the warm-up entries after --wait-idle pauses.
        r = {"source": "demo", "sql": sql, "ttl_s": 3600}
        if params is not None:
            r["params"] = params
        return r

    def expect(out, kind, what):
        got = out["meta"].get("cache")
        if got != kind or out["meta"].get("joined"):
            raise RuntimeError(f"{what}: expected a lone {kind}, got {out['meta']}")
        return out

    try:
        # --- warm-up: direct reads and a miss + hit of each query, checked against direct
        log("warm-up: direct reads, one miss and one hit of each query")
        ref_scan = Reference(direct_read(con, SCAN_SQL, [-1])["table"])
        ref_agg = Reference(direct_read(con, AGG_SQL, [-1])["table"])
        facts["scan_rows"], facts["scan_nbytes"] = ref_scan.table.num_rows, ref_scan.table.nbytes
        facts["scan_batches"] = len(ref_scan.batches)
        facts["agg_rows"] = ref_agg.table.num_rows
        first_rows = ref_scan.batches[0].num_rows if ref_scan.batches else 0
        if ref_scan.table.num_rows > int(BATCH_ROWS) and first_rows != int(BATCH_ROWS):
            raise RuntimeError(f"direct reads came in batches of {first_rows} rows, not "
                               f"{BATCH_ROWS}: the statement option did not apply")
        hit_scan_params, hit_agg_params = p.next(), p.next()
        for sql, params, ref in ((SCAN_SQL, hit_scan_params, ref_scan),
                                 (AGG_SQL, hit_agg_params, ref_agg)):
            miss = expect(quiver_read(server.client, req(sql, params)), "miss", "warm-up")
            if not miss["table"].equals(ref.table):
                raise RuntimeError(f"Quiver's result of {sql!r} differs from the direct one")
            wait_published(server, miss["meta"]["key"])
            hit = expect(quiver_read(server.client, req(sql, params)), "hit", "warm-up")
            if not hit["table"].equals(ref.table):
                raise RuntimeError(f"Quiver's cached result of {sql!r} differs from direct")

        def phase(name):
            wait_for_idle_accounted(args.wait_idle)
            return Phase(server, name, facts)

        # --- miss overhead: large scan, then the aggregate; ABBA order
        for name, sql, ref in (("scan", SCAN_SQL, ref_scan), ("agg", AGG_SQL, ref_agg)):
            with phase(f"miss_{name}"):
                log(f"miss overhead ({name}): {args.reps} direct reads and {args.reps} Quiver "
                    f"misses, alternating")
                raw[f"miss_{name}"] = miss_overhead(args, server, con, sql, ref, req, p, expect)

        # --- hit speedup: aggregate (direct figures of the same SQL from above) and the
        #     literal full scan SELECT * FROM events
        with phase("hit_agg"):
            log(f"hit speedup (aggregate): {args.hit_reps} hits")
            hits = []
            for _ in range(args.hit_reps):
                h = expect(with_cpu(server, quiver_read, server.client,
                                    req(AGG_SQL, hit_agg_params)), "hit", "hit")
                hits.append(strip(h))
            raw["hit_agg"] = {"direct": raw["miss_agg"]["direct"], "quiver": hits}

        with phase("hit_scan"):
            log(f"hit speedup (SELECT * FROM events): {args.reps} direct reads, "
                f"{args.hit_reps} hits, alternating")
            raw["hit_scan"] = hit_scan(args, server, con, req, expect)

        # --- stampedes: lone miss vs N concurrent identical misses, alternating order
        for name, sql, ref, keep, reps in (
                ("agg", AGG_SQL, ref_agg, True, args.stampede_reps),
                ("scan", SCAN_SQL, ref_scan, False, args.scan_stampede_reps)):
            if reps <= 0:
                continue
            with phase(f"stampede_{name}"):
                log(f"stampede ({name}): {reps} x (a lone miss and {args.clients} concurrent "
                    f"identical misses)")
                lones, crowds = [], []
                for rep in range(reps):
                    order = ("lone", "crowd") if rep % 2 == 0 else ("crowd", "lone")
                    for who in order:
                        if who == "lone":
                            lones.append(lone_miss(server, req(sql, p.next()), ref, keep))
                        else:
                            s = stampede(server, req(sql, p.next()), args.clients, ref, keep)
                            crowds.append(s)
                            log(f"  {args.clients} clients: slowest {s['slowest_s']:.2f} s "
                                f"(lone miss {lones[-1]['slowest_s'] if lones else float('nan'):.2f} s), "
                                f"executions of the key {s['executions_of_key']}, identical "
                                f"{s['identical']}, responses {s['responses']}")
                        time.sleep(0.3)
                raw[f"stampede_{name}"] = {"lone": lones, "crowd": crowds}

        facts["final_stats"] = server.stats()["queries"]
        facts["final_stats"].pop("executions_by_key", None)
    finally:
        server.stop()
        con.close()
    return res


# ---------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/query_bench.py",
        description="Benchmark Quiver's query cache against direct reads through the same "
                    "ADBC SQLite driver in one run: miss overhead on a large result, hit "
                    "speedup of a heavy aggregate and a large scan, and a stampede of "
                    "concurrent identical misses. Prints a table (metric | quiver | direct "
                    "| ratio | goal | met?) and writes the figures with machine details into "
                    "docs/benchmarks.md.",
        epilog="The full run takes 2-4 minutes on 2 cores; --quick is a smoke run on a small "
               "generated database that does not touch the docs unless --docs is given.")
    p.add_argument("--quick", action="store_true",
                   help="a generated 200,000-row database (unless --db), 2 repetitions, "
                        "4 hits, 1 stampede of each kind")
    p.add_argument("--db", default=None,
                   help="the SQLite database (with the demo's `events` table) to use; it is "
                        "copied into the work dir [default: build/demo.db; with --quick a "
                        "generated one]")
    p.add_argument("--rows", type=int, default=200_000,
                   help="rows of the generated database with --quick [default: %(default)s]")
    p.add_argument("--reps", type=int, default=None,
                   help="repetitions of each large measurement (direct reads, misses) "
                        "[default: 7, --quick: 2]")
    p.add_argument("--hit-reps", type=int, default=None,
                   help="hits timed per query [default: 20, --quick: 4]")
    p.add_argument("--clients", type=int, default=64,
                   help="concurrent clients in a stampede [default: %(default)s]")
    p.add_argument("--stampede-reps", type=int, default=None,
                   help="repetitions of (lone miss, stampede) with the aggregate "
                        "[default: 5, --quick: 1]")
    p.add_argument("--scan-stampede-reps", type=int, default=None,
                   help="repetitions of (lone miss, stampede) with the large scan; 0 skips "
                        "it [default: 2, --quick: 1]")
    p.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                   help="before starting and before each phase, wait up to SECONDS for the "
                        "machine to be idle (under 10%% busy over 3 s) [default: 0]")
    p.add_argument("--quiver", default=str(ROOT / "build" / "quiver"),
                   help="the server binary, copied into the work dir before use "
                        "[default: build/quiver]")
    add_output_args(p, "query-bench", "database copy, Quiver's data dir, server log", RESULTS_DIR)
    args = p.parse_args(argv)

    def pick(value, full, quick):
        return value if value is not None else (quick if args.quick else full)

    args.reps = pick(args.reps, 7, 2)
    args.hit_reps = pick(args.hit_reps, 20, 4)
    args.stampede_reps = pick(args.stampede_reps, 5, 1)
    args.scan_stampede_reps = pick(args.scan_stampede_reps, 2, 1)
    if args.db is None and not args.quick:
        args.db = str(DEFAULT_DB)
    if args.db is not None and not args.report and not Path(args.db).is_file():
        p.error(f"--db {args.db}: no such file (scripts/setup.sh makes build/demo.db)")
    if args.no_docs:
        args.docs = None
    elif args.docs is None and not args.quick:
        args.docs = str(DEFAULT_DOCS)
    if min(args.reps, args.hit_reps, args.clients, args.stampede_reps) < 1:
        p.error("--reps, --hit-reps, --clients and --stampede-reps must be at least 1")
    if args.rows < 1:
        p.error("--rows must be at least 1")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    # SIGTERM: unwind like Ctrl-C, so that the server is stopped and the work dir handled.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.report:
        return report(args)
    command = command_line("bench/query_bench.py", argv)
    clock = RunClock()  # before the first wait, which it leaves out of the other-CPU figure
    wait_for_idle_accounted(args.wait_idle)
    clock.note_load()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="query-bench-", dir=args.work_dir))
    try:
        res = run(args, work)
    except BaseException:
        log(f"the run failed; kept its work dir {work} (server log: {work / 'quiver.log'})")
        try:
            tail = (work / "quiver.log").read_text(errors="replace").splitlines()[-15:]
            log("last lines of the server log:\n  " + "\n  ".join(tail))
        except OSError:
            pass
        raise
    if args.keep_data:
        log(f"kept the work dir {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    runtime = clock.finish(res["facts"])

    rows = summarize(res, args)
    print_summary(res, rows, args, runtime)
    json_path = results_path(RESULTS_DIR, "query-bench", args.json)
    save_results(json_path, command, runtime, args, res, rows)
    print(f"raw results: {json_path}")
    if args.docs:
        write_docs(Path(args.docs), docs_section(res, rows, args, command, runtime),
                   BEGIN_MARK, END_MARK, intro=DOCS_TITLE, tmp_suffix=".query-bench.tmp")
        print(f"wrote the query-bench section of {args.docs}")
    return 0


def report(args) -> int:
    """--report: print and document an earlier run from its JSON file, without measuring."""
    res, saved, command, runtime = load_results(Path(args.report))
    rows = summarize(res, saved)
    print_summary(res, rows, saved, runtime)
    if args.docs:
        write_docs(Path(args.docs), docs_section(res, rows, saved, command, runtime),
                   BEGIN_MARK, END_MARK, intro=DOCS_TITLE, tmp_suffix=".query-bench.tmp")
        print(f"wrote the query-bench section of {args.docs} from {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
