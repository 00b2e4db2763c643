"""What one benchmark run hands back to the driver (from this process or a Ray worker) to be stored."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunRecord:
    prompt: str
    algorithm: str
    baseline_loss: float
    best_loss: float
    best_prompt: str
    best_negative_prompt: str
    top: list[dict]  # the best few evaluations, as in result.json
    evaluations: int
    wall_seconds: float
    judge_before: float | None  # share of the original images the judge passes; None without a judge verdict
    judge_after: float | None
    run_dir: str  # relative to the benchmark's output folder
    history: list[dict] = field(default_factory=list)  # every evaluation (dataclasses.asdict of dpodiff.Evaluation)
    # bench --eval-seeds: fractions of the evaluation images (bench/held_out.py); None without them
    judge_before_eval: float | None = None
    judge_after_eval: float | None = None
    repaired_eval: float | None = None
    broken_eval: float | None = None
    status: str = "done"
    error: str = ""
