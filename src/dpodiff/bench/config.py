"""Everything a benchmark run needs, as one picklable value (it travels to Ray workers)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from dpodiff.config import ModelSpec, RunConfig


@dataclass(frozen=True)
class BenchConfig:
    run: RunConfig  # the settings of every run; each run replaces the algorithm
    out: str  # the benchmark's output folder; each run saves its images under out/runs/
    models: ModelSpec = ModelSpec()  # threads None: see dpodiff.threads (Ray workers: their CPUs)
    space: str | None = None  # a space file (the reference format may hold every prompt), or None: built per prompt
    eval_seeds: int = 0  # the original and the chosen prompt judged on this many seeds nobody chose with (bench/held_out.py)

    @property
    def task(self) -> str:
        return self.run.task

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.run.seeds

    @property
    def budget(self) -> int:
        return self.run.budget

    def settings(self) -> dict:
        """What decides the numbers, so two databases with equal settings hold comparable results.

        Batch size, device, threads and output folder are left out: they change speed, not results (beyond float tolerance).
        """
        m = self.models
        return self.run.fingerprint() | {"model": m.model or "shapes-world", "scorer": m.scorer, "vae": m.vae, "dtype": m.dtype,
                                         "space_file": _digest(self.space) if self.space else None,
                                         "eval_seeds": self.eval_seeds}


def _digest(path: str) -> str:
    """The space file by content, so that renaming it does not matter and editing it does."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
