"""A unit of benchmark work and what the backends report back about it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dpodiff.bench.records import RunRecord


@dataclass(frozen=True)
class Job:
    run_id: int
    prompt: str
    algorithm: str


OnStart = Callable[[Job], None]
OnDone = Callable[[Job, "RunRecord | None", str], None]  # (job, record, error): record None when the run failed
