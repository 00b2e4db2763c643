"""Runs one after another in this process, sharing one loaded pipeline."""

from __future__ import annotations

from dpodiff.bench.config import BenchConfig
from dpodiff.bench.jobs import Job, OnDone, OnStart
from dpodiff.bench.runner import bench_models, run_one, score_prompts


class LocalExecutor:
    def __init__(self, config: BenchConfig, address: str | None = None):
        from dpodiff.threads import use_threads

        use_threads(config.models.threads)
        bench_models(config)  # loaded once, here, for every run

    def run(self, config: BenchConfig, jobs: list[Job], on_start: OnStart, on_done: OnDone) -> None:
        """A run that fails (e.g. a prompt with nothing to search) is reported and the others go on; Ctrl-C stops all."""
        for job in jobs:
            on_start(job)
            try:
                record = run_one(config, job.prompt, job.algorithm)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # noqa: BLE001 - one bad prompt must not lose a long benchmark
                on_done(job, None, f"{type(e).__name__}: {e}")
                continue
            on_done(job, record, "")

    def score(self, config: BenchConfig, prompts: list[str]) -> dict[str, list[float]]:
        return score_prompts(config, prompts)

    def close(self) -> None:
        pass
