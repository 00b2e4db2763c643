"""Everything a benchmark run needs, as one picklable value (it travels to Ray workers)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BenchConfig:
    task: str
    seeds: tuple[int, ...]
    budget: int
    out: str  # the benchmark's output folder; each run saves its images under out/runs/
    model: str | None = None
    scorer: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    steps: int = 50
    guidance: float = 7.5
    height: int | None = None
    width: int | None = None
    batch_size: int | None = None
    positive: bool = False
    space: str | None = None  # a space file (the reference format may hold every prompt), or None: built per prompt
    space_source: str = "auto"
    per_word: int = 5
    min_similarity: float = 0.0
    similarity_model: str = ""
    search_seed: int = 0

    def settings(self) -> dict:
        """What decides the numbers, so two databases with equal settings hold comparable results.

        Batch size, device and output folder are left out: they change speed, not results (beyond float tolerance).
        """
        settings = {
            "task": self.task, "seeds": list(self.seeds), "budget": self.budget, "model": self.model or "shapes-world",
            "scorer": self.scorer, "dtype": self.dtype, "steps": self.steps, "guidance": self.guidance, "height": self.height,
            "width": self.width, "positive": self.positive, "space_source": self.space_source, "per_word": self.per_word,
            "space_file": _digest(self.space) if self.space else None, "search_seed": self.search_seed,
        }
        if self.task == "attack":
            settings |= {"min_similarity": self.min_similarity, "similarity_model": self.similarity_model}
        return settings


def _digest(path: str) -> str:
    """The space file by content, so that renaming it does not matter and editing it does."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
