"""DIR/summary.csv, DIR/summary.md and DIR/report.html (images before/after and a loss plot per prompt)."""

from __future__ import annotations

import json
from dataclasses import astuple
from importlib.resources import files
from pathlib import Path

from dpodiff.bench import storage
from dpodiff.bench.config import BenchConfig
from dpodiff.report.curves import loss_plot
from dpodiff.bench.runner import run_dir_name
from dpodiff.bench.summary import (
    COLUMNS,
    SummaryRow,
    _cell,
    summarize,
    to_markdown,
    write_csv,
)
from dpodiff.display import shown
from dpodiff.files import save_image, write_text


def write_outputs(conn, config: BenchConfig, prompts: list[str], algorithms: list[str], db: Path) -> list[SummaryRow]:
    """Write the three files from the database (not from memory), so a resumed benchmark reports every run."""
    out = Path(config.out)
    rows = storage.run_rows(conn, config.task, prompts, algorithms)
    summary = summarize(rows, algorithms)
    write_csv(summary, out / "summary.csv")
    write_text(out / "summary.md", to_markdown(summary))
    failed = [dict(prompt=p, algorithm=a, error=e) for p, a, e in conn.execute(
        "SELECT prompt, algorithm, error FROM runs WHERE task = ? AND status = 'failed'", (config.task,)) if p in prompts and a in algorithms]
    write_text(out / "report.html", render_report(conn, config, prompts, algorithms, rows, summary, failed, db))
    return summary


def render_report(conn, config, prompts, algorithms, rows, summary, failed, db) -> str:
    import jinja2

    out = Path(config.out)
    by_prompt: dict[str, list] = {}
    for r in rows:
        by_prompt.setdefault(r["prompt"], []).append(r)
    entries = []
    for prompt in prompts:
        runs = by_prompt.get(prompt, [])
        if not runs:
            continue
        plot = Path(run_dir_name(prompt, "x")).parent / "loss.png"
        (out / plot).parent.mkdir(parents=True, exist_ok=True)
        save_image(out / plot, loss_plot({r["algorithm"]: storage.history(conn, r["id"]) for r in runs}, config.run.task_spec.sign))
        entries.append({"prompt": prompt, "plot": plot.as_posix(), "runs": [_run_view(r, out) for r in runs]})
    # every text shown with control characters escaped (a prompt file may hold terminal escape codes)
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                                     finalize=lambda v: shown(v, 1000) if isinstance(v, str) else v)
    template = environment.from_string(
        files("dpodiff").joinpath("assets/bench/report.html.j2").read_text(encoding="utf-8"))
    return template.render(
        task=config.task, n_prompts=len(entries), algorithms=algorithms, seeds=list(config.seeds), budget=config.budget,
        model=config.models.model or "shapes world", db=str(db), columns=COLUMNS, summary=[[_cell(v) for v in astuple(s)] for s in summary],
        prompts=entries, failed=failed,
    )


def _run_view(row, out: Path) -> dict:
    seeds = json.loads(row["seeds"])
    run_dir = Path(row["run_dir"])
    return {
        "algorithm": row["algorithm"], "baseline_loss": row["baseline_loss"], "best_loss": row["best_loss"],
        "judge_before": row["judge_before"], "judge_after": row["judge_after"] if row["judge_after"] is not None else 0.0,
        "judge_before_eval": row["judge_before_eval"], "judge_after_eval": row["judge_after_eval"],
        "best_prompt": row["best_prompt"], "best_negative_prompt": row["best_negative_prompt"],
        "before": [(run_dir / f"original_seed{s}.png").as_posix() for s in seeds if (out / run_dir / f"original_seed{s}.png").is_file()],
        "after": [(run_dir / f"best_seed{s}.png").as_posix() for s in seeds if (out / run_dir / f"best_seed{s}.png").is_file()],
    }
