"""One run of a benchmark harness: its command line, its clock and CPU accounting, its
results file, and reading a saved run back (the harnesses' --report).

RunClock starts before the run's first wait for an idle machine and, at the end, records in
the run's facts how much CPU other work used meanwhile (the waits left out), the load
averages, the time waited and the date. save_results writes the JSON file (command, runtime,
arguments, facts, table rows, raw figures) that load_results reads back; results_path names
it. Used by query_bench.py and shared_bench.py.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench_env import (WAITED, log, machine_busy_seconds, own_cpu_seconds,
                       wait_for_idle_accounted)


def command_line(script: str, argv: list[str], env_vars=()) -> str:
    """How the run was started: $QUIVER_BENCH_COMMAND (the scripts/bench*.sh wrappers set
    it), else the harness's command line, preceded by those of `env_vars` that are set."""
    given = os.environ.get("QUIVER_BENCH_COMMAND")
    if given:
        return given
    env = "".join(f"{k}={shlex.quote(os.environ[k])} " for k in env_vars if os.environ.get(k))
    return env + shlex.join([".venv/bin/python", script, *argv])


def add_output_args(p: argparse.ArgumentParser, name: str, work_dir_holds: str,
                    results_dir: Path) -> None:
    """The options where a run keeps its files and what it writes: --work-dir, --keep-data,
    --docs, --no-docs, --report, --json. `name`: e.g. "query-bench" (the docs section and
    the results file are named after it); `work_dir_holds`: what the temporary dir holds."""
    rel = f"{results_dir.parent.name}/{results_dir.name}"  # e.g. bench/results
    p.add_argument("--work-dir", default=str(results_dir),
                   help=f"where the run's temporary dir ({work_dir_holds}) is created "
                        f"[default: {rel}]")
    p.add_argument("--keep-data", action="store_true",
                   help=f"keep the run's temporary dir ({work_dir_holds})")
    p.add_argument("--docs", default=None,
                   help=f"markdown file whose {name} section is rewritten [default: "
                        "docs/benchmarks.md; not written with --quick]")
    p.add_argument("--no-docs", action="store_true", help="do not write the docs file")
    p.add_argument("--report", default=None, metavar="JSON",
                   help="measure nothing: print an earlier run's table from its raw results "
                        "file and rewrite the docs section from it")
    p.add_argument("--json", default=None,
                   help=f"where to write the raw results [default: {rel}/{name}-<time>.json]")


def utc_date() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def load_averages() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class RunClock:
    """A run's wall time and the CPU other work used during it (the machine's busy time
    less this process's and its reaped children's: the servers it started and stopped).
    Start it before the run's first wait for idle: the waits (bench_env.WAITED) count in the
    run's time but not in the other-CPU figure."""

    def __init__(self):
        self.start = time.perf_counter()
        self.busy0, self.own0 = machine_busy_seconds(), own_cpu_seconds()
        self.waited0 = dict(WAITED)
        self.load_start = load_averages()

    def note_load(self) -> None:
        """Record the load average now as the run's start (call it after the first wait),
        with a warning if other work is running."""
        self.load_start = load_averages()
        if os.getloadavg()[0] > 0.5:
            log(f"note: the 1-minute load average is {os.getloadavg()[0]:.2f}; other work on "
                f"this machine adds noise (see --wait-idle)")

    def finish(self, facts: dict) -> float:
        """The run's wall time in seconds. Records other_cpu_seconds, other_cpu_share,
        load_start, load_end, waited_for_idle_seconds and date_utc in `facts`. Call it after
        the servers were stopped and reaped."""
        runtime = time.perf_counter() - self.start
        waited = {k: WAITED[k] - self.waited0[k] for k in ("busy", "own", "wall")}
        other = max(0.0, (machine_busy_seconds() - self.busy0 - waited["busy"])
                    - (own_cpu_seconds() - self.own0 - waited["own"]))
        facts["other_cpu_seconds"] = other
        facts["other_cpu_share"] = (other / max(1e-9, runtime - waited["wall"])
                                    / (os.cpu_count() or 1))
        facts["load_start"] = self.load_start
        facts["load_end"] = load_averages()
        facts["waited_for_idle_seconds"] = waited["wall"]
        facts["date_utc"] = utc_date()
        return runtime


def results_path(results_dir: Path, name: str, given: str | None) -> Path:
    """`given`, else results_dir/<name>-<local time>.json; its directory is created."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(given) if given else Path(results_dir) / f"{name}-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_results(path: Path, command: str, runtime: float, args, res: dict,
                 rows: list[dict]) -> None:
    path.write_text(json.dumps({"command": command, "runtime_s": runtime, "args": vars(args),
                                "facts": res["facts"], "rows": rows, "raw": res["raw"]},
                               indent=2, default=str))


def load_results(path: Path):
    """(res, args, command, runtime) of a run saved by save_results; bench_env.WAITED["wall"]
    is set to the time that run waited for idle, as the reports print it."""
    data = json.loads(Path(path).read_text())
    WAITED["wall"] = data["facts"].get("waited_for_idle_seconds", 0.0)
    return ({"raw": data["raw"], "facts": data["facts"]}, argparse.Namespace(**data["args"]),
            data["command"], data["runtime_s"])


def finish_run(report, name: str, res: dict, args, command: str, runtime: float,
               json_path: Path | None, results_dir: Path) -> None:
    """Print a run's figures and write its section of the docs; save the results to
    json_path (None: a replay of args.report). `report` is the harness's report module:
    summarize(res, args) -> rows, same_setup(args), print_summary(res, rows, args, runtime),
    docs_section(res, rows, args, command, runtime) and write_section(path, text)."""
    from bench_docs import run_history  # bench_docs uses this module's helpers

    rows = report.summarize(res, args)
    if json_path is not None:
        save_results(json_path, command, runtime, args, res,
                     [{"metric": r.metric, "unit": r.unit, "quiver": r.quiver,
                       "baseline": r.baseline, "ratio": r.ratio, "diagnostic": r.diag}
                      for r in rows])
    this = json_path or Path(args.report)
    runs, hist = run_history(rows, this, results_dir, f"{name}-*.json", report.same_setup(args))
    if runs >= 3:
        res["facts"]["history_runs"], res["facts"]["history"] = runs, hist
    report.print_summary(res, rows, args, runtime)
    if json_path is not None:
        print(f"raw results: {json_path}")
    if args.docs:
        report.write_section(Path(args.docs), report.docs_section(res, rows, args, command,
                                                                  runtime))
        print(f"wrote the {name} section of {args.docs}")


def run_harness(report, name: str, script: str, argv: list[str], args, run,
                results_dir: Path, kept: str) -> int:
    """The body of a harness's main(): replay args.report, or wait for the machine to go
    idle, run(args, work_dir) in a fresh work dir under args.work_dir (kept on failure or
    with --keep-data; `kept` says what it holds), then finish_run. SIGTERM unwinds like
    Ctrl-C, so that every process the run started is stopped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.report:
        res, saved, command, runtime = load_results(Path(args.report))
        saved.docs, saved.report = args.docs, args.report
        finish_run(report, name, res, saved, command, runtime, None, results_dir)
        return 0
    command = command_line(script, argv, env_vars=("QUIVER_BIN",))
    clock = RunClock()  # before the first wait, which it leaves out of the other-CPU figure
    wait_for_idle_accounted(args.wait_idle)
    clock.note_load()
    results_dir.mkdir(parents=True, exist_ok=True)
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=args.work_dir))
    try:
        res = run(args, work)
    except BaseException:
        log(f"the run failed; kept its work dir {work} ({kept})")
        raise
    if args.keep_data:
        log(f"kept the work dir {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    runtime = clock.finish(res["facts"])
    finish_run(report, name, res, args, command, runtime,
               results_path(results_dir, name, args.json), results_dir)
    return 0
