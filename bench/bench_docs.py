"""Result tables and docs/benchmarks.md sections shared by the benchmark harnesses.

Row is one metric measured on Quiver and on the baseline; text_table and markdown_table
render rows, spread_lines their min-max spread. run_history gathers the ratios of earlier
runs saved as JSON under bench/results/, history_lines renders them. write_docs rewrites
one harness's section of a markdown file, between its begin and end markers, keeping the
text outside them (a new file starts with DOCS_INTRO).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bench_env import median

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


def text_table(rows: list[Row]) -> str:
    header = ["metric", "quiver", "baseline", "ratio Q/B", "Quiver better?"]
    body = [[f"{r.metric} ({r.unit}, {'higher' if r.higher_is_better else 'lower'} "
             f"is better)", fmt_value(r.quiver, r.unit), fmt_value(r.baseline, r.unit),
             fmt_ratio(r.ratio), r.quiver_better] for r in rows]
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths)),
             "-+-".join("-" * w for w in widths)]
    for row in body:
        lines.append(" | ".join([row[0].ljust(widths[0])]
                                + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    out = ["| metric | Quiver | baseline | ratio Quiver/baseline | Quiver better? |",
           "|---|---:|---:|---:|---|"]
    for r in rows:
        better = "higher" if r.higher_is_better else "lower"
        out.append(f"| {r.metric} ({r.unit}, {better} is better) | "
                   f"{fmt_value(r.quiver, r.unit)} | {fmt_value(r.baseline, r.unit)} | "
                   f"**{fmt_ratio(r.ratio)}** | {r.quiver_better} |")
    return "\n".join(out)


def spread_lines(rows: list[Row]) -> list[str]:
    out = []
    for r in rows:
        if r.q_spread is None and r.b_spread is None:
            continue
        parts = []
        if r.q_spread:
            parts.append(f"Quiver {fmt_value(r.q_spread[0], r.unit)}–"
                         f"{fmt_value(r.q_spread[1], r.unit)}")
        if r.b_spread:
            parts.append(f"baseline {fmt_value(r.b_spread[0], r.unit)}–"
                         f"{fmt_value(r.b_spread[1], r.unit)}")
        out.append(f"* {r.metric}: " + ", ".join(parts) + f" {r.unit}")
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
