"""One Ray task per (prompt, algorithm); the driver alone writes the database.

Ray is optional (`pip install -e ".[ray]"` from the checkout) and imported only here. Each task asks for one GPU when the
cluster has GPUs; a task whose worker dies is retried (max_retries); an exception inside a run is not
retried (it would fail again) but recorded as a failed run.
"""

from __future__ import annotations

import socket
from urllib.parse import urlparse

from dpodiff.bench.config import BenchConfig
from dpodiff.bench.jobs import Job, OnDone, OnStart
from dpodiff.errors import UsageError

MAX_RETRIES = 3


def _ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'ray>=2.9' (or pip install -e '.[ray]' in the checkout).") from None
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast, with a clear message, when nothing answers at host:port (ray.init would wait a long time)."""
    if address in ("auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if not parsed.hostname or not parsed.port:
        raise UsageError(f"--ray-address {address!r} is not host:port or ray://host:port (e.g. 10.0.0.5:6379 or ray://10.0.0.5:10001).")
    try:
        socket.create_connection((parsed.hostname, parsed.port), timeout=timeout).close()
    except OSError as e:
        raise UsageError(
            f"The Ray cluster at {address} does not answer ({e.strerror or e}). Check the address and port "
            f"(`ray status` on the head node), or leave out --ray-address to start a local cluster."
        ) from None


def connect(address: str | None) -> bool:
    """Join the cluster at `address`, or start a local one; True when this call started Ray (so it should shut it down)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    if address:
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise UsageError(f"Could not connect to {where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}.") from None
    return True


def _resources() -> dict:
    ray = _ray()
    gpus = ray.cluster_resources().get("GPU", 0)
    return {"num_gpus": 1, "num_cpus": 1} if gpus >= 1 else {"num_cpus": 1}


def _use_worker_threads(config: BenchConfig) -> None:
    """A task uses the CPUs Ray gave it (one), so workers sharing a node never oversubscribe its cores."""
    from dpodiff.threads import use_threads

    assigned = _ray().get_runtime_context().get_assigned_resources().get("CPU", 1)
    use_threads(config.models.threads or max(1, int(assigned)))


def _run_task(config: BenchConfig, prompt: str, algorithm: str):
    from dpodiff.bench.runner import run_one

    _use_worker_threads(config)
    return run_one(config, prompt, algorithm)


def _score_task(config: BenchConfig, prompts: list[str]):
    from dpodiff.bench.runner import score_prompts

    _use_worker_threads(config)
    return score_prompts(config, prompts)


def run_ray(config: BenchConfig, jobs: list[Job], on_start: OnStart, on_done: OnDone, max_retries: int = MAX_RETRIES,
            run=_run_task) -> None:
    """Submit every job, then hand each result to `on_done` (in this process) as it arrives.

    `run(config, prompt, algorithm) -> RunRecord` is what a task does (tests swap in one whose worker dies).
    """
    ray = _ray()
    task = ray.remote(max_retries=max_retries, **_resources())(run)
    pending = {}
    for job in jobs:
        pending[task.remote(config, job.prompt, job.algorithm)] = job
        on_start(job)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                record = ray.get(ready[0])
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if getattr(e, "cause", None) is not None else e
                on_done(job, None, f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}")
                continue
            except ray.exceptions.RayError as e:  # the worker died more than max_retries times, or the node left
                on_done(job, None, f"{type(e).__name__}: {str(e).splitlines()[0]}")
                continue
            on_done(job, record, "")
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


def score_ray(config: BenchConfig, prompts: list[str]) -> dict[str, list[float]]:
    ray = _ray()
    return ray.get(ray.remote(max_retries=MAX_RETRIES, **_resources())(_score_task).remote(config, prompts))


class RayExecutor:
    """Joins the cluster at `address` (or starts a local one, shut down again by close)."""

    def __init__(self, config: BenchConfig, address: str | None = None):
        self.started = connect(address)

    def run(self, config: BenchConfig, jobs: list[Job], on_start: OnStart, on_done: OnDone) -> None:
        run_ray(config, jobs, on_start, on_done)

    def score(self, config: BenchConfig, prompts: list[str]) -> dict[str, list[float]]:
        return score_ray(config, prompts)

    def close(self) -> None:
        if self.started:
            _ray().shutdown()
