"""Result tables and docs/benchmarks.md sections shared by the benchmark harnesses.

Row is one metric measured on Quiver and on the baseline; GoalRow one also judged against
a goal (GOAL_COLUMNS shows whether it is met and by how much); text_table and
markdown_table render rows in columns (COLUMNS by default; a harness may pass its own), and
spread_lines their min-max spread. How a figure prints and what the two sides are called
are the Row's (fmt, quiver_label, baseline_label): a harness's Row subclass may change them.
run_history gathers the ratios of earlier runs saved as JSON under bench/results/,
history_lines renders them. header_lines opens a section (date, command, machine, binary);
write_docs rewrites one harness's section of a markdown file, between its begin and end
markers, keeping the text outside them (a new file starts with DOCS_INTRO).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

from bench_env import WAITED, median

DOCS_INTRO = """\
# Benchmarks

Performance figures for Quiver, each section written by a harness under `bench/` and
rewritten in place when that harness runs again (between its `<!-- ...:begin -->` and
`<!-- ...:end -->` markers; text outside the markers is kept).

Methodology common to all sections:

* Quiver is compared with the baseline a user would otherwise write, measured in the same
  run on the same machine with the same client code and the same data; the ratio column
  is Quiver divided by the baseline.
* Timings are medians over repetitions after a warm-up, with requests alternating between
  the systems under test so that machine noise hits both. The spread (min-max) is
  reported next to the medians.
* Throughput is in decimal units (1 GB/s = 10^9 bytes/s) of the Arrow table's in-memory
  size (`pa.Table.nbytes`, the sum of its buffers), unless a section says otherwise.
* The machine details (CPU, cores, RAM, kernel, library versions, Quiver commit) are
  recorded with each section. Small cloud VMs are noisy: treat differences under ~10% as
  noise unless they repeat across runs.

"""


# ---------------------------------------------------------------------------------------
# Rows


@dataclass
class Row:
    metric: str
    unit: str
    higher_is_better: bool
    quiver: float
    baseline: float | None
    q_spread: tuple[float, float] | None = None
    b_spread: tuple[float, float] | None = None
    note: str = ""
    diag: bool = False  # a diagnostic (where the CPU goes), shown in a second table

    # How the spread lines name the two sides.
    quiver_label: ClassVar[str] = "Quiver"
    spread_joiner: ClassVar[str] = ", "

    @property
    def baseline_label(self) -> str:
        return "baseline"

    def fmt(self, v: float | None) -> str:
        """One of this row's figures as the tables print it."""
        return fmt_value(v, self.unit)

    def span(self, lo: float, hi: float) -> str:
        return f"{self.fmt(lo)}{' to ' if lo < 0 or hi < 0 else '–'}{self.fmt(hi)}"

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0) or self.quiver != self.quiver:
            return None
        return self.quiver / self.baseline

    @property
    def quiver_better(self) -> str:
        r = self.ratio
        if r is None:
            return "n/a"
        if 0.95 <= r <= 1.05:
            return "tie (within 5%)"
        return "yes" if (r > 1) == self.higher_is_better else "no"


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    raw: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# Tables


def fmt_value(v: float | None, unit: str) -> str:
    if v is None or v != v:
        return "n/a"
    if unit == "GB/s":
        return f"{v:.2f}"
    if unit == "CPU-s/GB":
        return f"{v:.3f}"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def fmt_ratio(r):
    return "n/a" if r is None else f"{r:.2f}"


@dataclass(frozen=True)
class Column:
    """A column of a results table: its header, a row's cell, and whether it holds text
    (left-aligned) or figures (right-aligned). md_header and md_cell, if given, replace
    header and cell in the docs' markdown table."""
    header: str
    cell: Callable[[Row], str]
    text: bool = False
    md_header: str | None = None
    md_cell: Callable[[Row], str] | None = None


def metric_with_unit(r: Row) -> str:
    return f"{r.metric} ({r.unit}, {'higher' if r.higher_is_better else 'lower'} is better)"


COLUMNS = (
    Column("metric", metric_with_unit, text=True),
    Column("quiver", lambda r: r.fmt(r.quiver), md_header="Quiver"),
    Column("baseline", lambda r: r.fmt(r.baseline)),
    Column("ratio Q/B", lambda r: fmt_ratio(r.ratio), md_header="ratio Quiver/baseline",
           md_cell=lambda r: f"**{fmt_ratio(r.ratio)}**"),
    Column("Quiver better?", lambda r: r.quiver_better, text=True),
)


# ---------------------------------------------------------------------------------------
# Rows measured against a goal (an issue's target)


@dataclass
class GoalRow(Row):
    """A figure with, optionally, a baseline measured in the same run and a goal: a bound
    on the value itself (goal_on "value") or on the ratio value/baseline ("ratio"), in the
    row's direction (at most for lower-is-better rows, at least for higher-is-better).
    goal_text says what the goal is as the issue words it; baseline_name what the baseline
    is."""
    id: str = ""
    baseline_name: str = ""
    goal: float | None = None
    goal_on: str = "value"
    goal_text: str = ""

    quiver_label = ""
    spread_joiner = " vs. "

    @property
    def baseline_label(self) -> str:
        return self.baseline_name

    def fmt(self, v) -> str:
        if v is None or v != v:
            return "—"
        if self.unit in ("req/s", "puts/s", "B", "entries/s"):
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"

    @property
    def judged(self) -> float | None:
        """The figure the goal bounds: the value or the ratio (None if not measured)."""
        x = self.ratio if self.goal_on == "ratio" else self.quiver
        return None if x is None or x != x else x

    @property
    def met(self) -> bool | None:
        x = self.judged
        if self.goal is None or x is None:
            return None
        return x >= self.goal if self.higher_is_better else x <= self.goal

    def metric_cell(self) -> str:
        better = "higher" if self.higher_is_better else "lower"
        return f"{self.metric} ({self.unit}, {better} better)"

    def ratio_cell(self, markdown: bool = False) -> str:
        r = self.ratio
        if r is None:
            return "—"
        text = f"{r:.3f}×" if r < 0.1 else f"{r:.2f}×"
        return f"**{text}**" if markdown and self.goal_on == "ratio" else text

    def met_cell(self, markdown: bool = False) -> str:
        """met / NOT MET with the judged figure as a multiple of the bound."""
        m = self.met
        if m is None:
            return "—" if self.goal is None else "not measured"
        factor = self.judged / self.goal
        word = "met" if m else ("**not met**" if markdown else "NOT MET")
        return f"{word} ({factor:.2f}× the bound)"


GOAL_COLUMNS = (
    Column("metric", GoalRow.metric_cell, text=True),
    Column("value", lambda r: r.fmt(r.quiver)),
    Column("baseline", lambda r: r.fmt(r.baseline)),
    Column("baseline is", lambda r: r.baseline_name if r.baseline is not None else "",
           text=True),
    Column("ratio", GoalRow.ratio_cell, md_cell=lambda r: r.ratio_cell(markdown=True)),
    Column("goal", lambda r: r.goal_text, text=True),
    Column("goal met?", GoalRow.met_cell, text=True, md_cell=lambda r: r.met_cell(True)),
)


def text_table(rows: list[Row], columns=COLUMNS) -> str:
    head = [c.header for c in columns]
    body = [[c.cell(r) for c in columns] for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(columns))]

    def line(cells):
        return " | ".join(x.ljust(w) if c.text else x.rjust(w)
                          for x, w, c in zip(cells, widths, columns))

    return "\n".join([line(head), "-+-".join("-" * w for w in widths)] + [line(b) for b in body])


def markdown_table(rows: list[Row], columns=COLUMNS) -> str:
    out = ["| " + " | ".join(c.md_header or c.header for c in columns) + " |",
           "|" + "".join("---|" if c.text else "---:|" for c in columns)]
    for r in rows:
        out.append("| " + " | ".join((c.md_cell or c.cell)(r) for c in columns) + " |")
    return "\n".join(out)


def spread_lines(rows: list[Row]) -> list[str]:
    """'* metric: Quiver lo–hi, baseline lo–hi unit' for each row with a spread."""
    out = []
    for r in rows:
        parts = [f"{label} {r.span(*s)}".lstrip()
                 for label, s in ((r.quiver_label, r.q_spread), (r.baseline_label, r.b_spread))
                 if s]
        if parts:
            out.append(f"* {r.metric}: " + r.spread_joiner.join(parts) + f" {r.unit}")
    return out


# ---------------------------------------------------------------------------------------
# Earlier runs


def run_history(rows: list[Row], this_json: Path, results_dir: Path, pattern: str,
                same_setup) -> tuple[int, dict]:
    """Ratios of this run's rows and of earlier runs saved in results_dir as files
    matching pattern for which same_setup(saved JSON) is true (a KeyError or TypeError
    in it skips the file): (number of runs, {metric: [ratio, ...]})."""
    out = {r.metric: [r.ratio] for r in rows if not r.diag and r.ratio is not None}
    runs = 1
    for f in sorted(Path(results_dir).glob(pattern)):
        if f.resolve() == this_json.resolve():
            continue
        try:
            d = json.loads(f.read_text())
            if not same_setup(d):
                continue
            saved_rows = d["rows"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        runs += 1
        for row in saved_rows:
            if not row.get("diagnostic") and row.get("ratio") is not None \
                    and row.get("metric") in out:
                out[row["metric"]].append(row["ratio"])
    return runs, out


def history_lines(runs: int, hist: dict) -> list[str]:
    return [f"* {metric}: {min(v):.2f} – {median(v):.2f} – {max(v):.2f} ({len(v)} runs)"
            for metric, v in hist.items()]


# ---------------------------------------------------------------------------------------
# The docs file


def header_lines(res: dict, command: str, runtime: float, script: str, wrapper: str) -> list:
    """The lines that open a harness's docs section: who wrote it, the date, the command and
    run time, the machine, the binary and the data dir's file system. Needs the facts
    bench_servers.snapshot_with_facts and bench_run.RunClock record, and
    facts["software"]["quiver"] (the binary's --version)."""
    f, m = res["facts"], res["facts"]["machine"]
    return [
        f"_Written by `{script}` (`{wrapper}`); do not edit by hand between the markers._",
        "",
        f"* Date: {f.get('date_utc')}",
        f"* Command: `{command}` (the run took {runtime:.0f} s"
        + (f", of which {WAITED['wall']:.0f} s waiting for the machine to go idle)"
           if WAITED["wall"] >= 1 else ")"),
        f"* Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, kernel {m['kernel']} "
        f"({m['os']}); load average at start {f['load_start']}, at end {f['load_end']}; CPU "
        f"used by other work during the run {f.get('other_cpu_share', 0):.0%} of the machine",
        f"* Software: {f['software']['quiver']} at commit {m['quiver_commit']}; binary "
        f"{f['quiver_binary']['path']} (sha256 {f['quiver_binary']['sha256']}); Python "
        f"{m['python']}, pyarrow {m['pyarrow']}",
        f"* Data dir: {m['data_dir_fs']}",
    ]


def noise_note(res: dict, threshold: float = 0.25) -> str:
    """A warning to open an analysis with when other work used more than `threshold` of the
    machine during the run (facts["other_cpu_share"], bench_run.RunClock's), else ""."""
    share = res["facts"].get("other_cpu_share", 0.0)
    if share <= threshold:
        return ""
    return (f"**A noisy run.** Other work used {share:.0%} of the machine's CPU while this ran "
            f"(other engineers' builds on a shared {res['facts']['machine']['cores']}-core VM). "
            f"Timings are upper bounds of what a quiet machine gives, tail latencies (p99) "
            f"most of all; the counts, memory figures and checks are not affected.")


def write_docs(path: Path, section: str, begin_mark: str, end_mark: str,
               intro: str = DOCS_INTRO, tmp_suffix: str | None = None) -> None:
    """Replace the text from begin_mark to end_mark in path with section (which starts
    and ends with the markers), or append section if the markers are missing. The new
    text is written to path's name + tmp_suffix (default: path with its suffix + ".tmp")
    and renamed over path."""
    text = path.read_text() if path.exists() else intro
    if begin_mark in text and end_mark in text:
        before = text.split(begin_mark, 1)[0]
        after = text.split(end_mark, 1)[1]
        text = before + section.rstrip("\n") + after
        if not text.endswith("\n"):
            text += "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = (path.with_suffix(path.suffix + ".tmp") if tmp_suffix is None
           else path.with_name(path.name + tmp_suffix))
    tmp.write_text(text)
    tmp.replace(path)


# ---------------------------------------------------------------------------------------


def write_headed_section(path: Path, section: str, begin_mark: str, end_mark: str,
                         heading: str, name: str) -> None:
    """Rewrite a harness's section between its markers in path; the first time, append it
    at the end after its `heading` line. `name` (e.g. "scale-bench") names the temp file."""
    text = path.read_text() if path.exists() else ""
    if begin_mark not in text or end_mark not in text:
        section = f"{heading}\n\n{section}"
    write_docs(path, section, begin_mark, end_mark, intro="# Benchmarks\n",
               tmp_suffix=f".{name}.tmp")


def other_work_line(res: dict) -> str:
    """The closing line of a harness's printed summary: how much of the machine other work
    used while it ran."""
    other = res["facts"]["other_cpu_share"]
    return (f"\nOther CPU use on the machine during the run: {other:.0%} of the machine"
            + ("  <-- noisy run; consider --wait-idle" if other > 0.1 else ""))



def print_goal_summary(title: str, runtime: float, rows, columns, diag_columns, details,
                       analysis_text: str, res: dict, extra=(), medians: bool = False) -> None:
    """The summary a harness prints on the terminal: `title` with the run's time, the goal rows
    (`columns`), the diagnostic rows (`diag_columns`), `extra` lines, the details, the analysis
    without markdown emphasis and the share of the machine other work used."""
    waited = f", {WAITED['wall']:.0f} s of it waiting for idle" if WAITED["wall"] >= 1 else ""
    print()
    print(f"{title} ({runtime:.0f} s{waited}{'; medians' if medians else ''})")
    print(text_table([r for r in rows if not r.diag], columns))
    print()
    print(text_table([r for r in rows if r.diag], diag_columns))
    for line in extra:
        print(line)
    print()
    for line in details:
        print(line)
    print()
    print(analysis_text.replace("**", ""))
    print(other_work_line(res))
