"""The summary table: one row per (task, algorithm) over the finished runs, as CSV and Markdown."""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from dpodiff.files import write_atomic


@dataclass
class SummaryRow:
    task: str
    algorithm: str
    n_prompts: int
    baseline_loss_mean: float
    baseline_loss_std: float
    best_loss_mean: float
    best_loss_std: float
    judge_before: float | None  # share of images the judge passes, over the runs with a verdict; None: no judge
    judge_after: float | None
    judge_before_eval: float | None  # bench --eval-seeds: shares of the evaluation images (bench/held_out.py); None without
    judge_after_eval: float | None
    repaired_eval: float | None
    broken_eval: float | None
    evaluations_per_prompt: float
    seconds_per_prompt: float


COLUMNS = [f.name for f in fields(SummaryRow)]
EVAL_COLUMNS = ("judge_before_eval", "judge_after_eval", "repaired_eval", "broken_eval")


def summarize(rows, algorithms: list[str]) -> list[SummaryRow]:
    """Rows are the database's finished runs (mappings with the runs table's columns).

    Standard deviations are sample ones (n - 1), 0 for a single prompt. The judge shares are means of the
    per-run shares, which is the share of all images since every run has the same number of seeds.
    """
    out = []
    for task, algorithm in sorted({(r["task"], r["algorithm"]) for r in rows}, key=lambda k: (k[0], algorithms.index(k[1]) if k[1] in algorithms else 99)):
        runs = [r for r in rows if r["task"] == task and r["algorithm"] == algorithm]
        baseline = [r["baseline_loss"] for r in runs]
        best = [r["best_loss"] for r in runs]
        out.append(SummaryRow(
            task=task, algorithm=algorithm, n_prompts=len(runs),
            baseline_loss_mean=statistics.fmean(baseline), baseline_loss_std=_std(baseline),
            best_loss_mean=statistics.fmean(best), best_loss_std=_std(best),
            judge_before=_mean([r["judge_before"] for r in runs]), judge_after=_mean([r["judge_after"] for r in runs]),
            **{column: _mean([r[column] for r in runs]) for column in EVAL_COLUMNS},
            evaluations_per_prompt=statistics.fmean(r["evaluations"] for r in runs),
            seconds_per_prompt=statistics.fmean(r["wall_seconds"] for r in runs),
        ))
    return out


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.fmean(known) if known else None


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_csv(rows: list[SummaryRow], path: Path) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            writer.writerows([[_cell(v) for v in astuple(r)] for r in rows])

    write_atomic(path, write)


def to_markdown(rows: list[SummaryRow]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(v) for v in astuple(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"
