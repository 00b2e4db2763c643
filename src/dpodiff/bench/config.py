"""Everything a benchmark run needs, as one picklable value (it travels to Ray workers)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from dpodiff.config import RunConfig


@dataclass(frozen=True)
class BenchConfig:
    run: RunConfig  # the settings of every run; each run replaces the algorithm
    out: str  # the benchmark's output folder; each run saves its images under out/runs/
    model: str | None = None
    scorer: str | None = None
    vae: str | None = None  # a VAE instead of the model's own
    device: str = "auto"
    dtype: str = "auto"
    space: str | None = None  # a space file (the reference format may hold every prompt), or None: built per prompt
    threads: int | None = None  # torch CPU threads per process; None: see dpodiff.threads (Ray workers: their CPUs)
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
        return self.run.fingerprint() | {"model": self.model or "shapes-world", "scorer": self.scorer, "vae": self.vae, "dtype": self.dtype,
                                         "space_file": _digest(self.space) if self.space else None,
                                         "eval_seeds": self.eval_seeds}


def _digest(path: str) -> str:
    """The space file by content, so that renaming it does not matter and editing it does."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
