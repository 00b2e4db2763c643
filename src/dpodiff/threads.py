"""How many CPU threads torch may use: the cores that are ours, never more.

PyTorch's OpenMP threads spin while they wait for each other. With more threads than free cores (a
container that sees the host's cores, SMT siblings, other processes or bench workers on the same
cores) a thread that lost its core stalls all the others, and a CPU run slows down many times over
(benchmarks/threads.py measures it). So the default is the physical cores this process may run on
(affinity and cgroup quota), less the cores other processes keep busy right now, split between the
workers that share the machine. `--threads N` overrides it.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path


def physical_cores() -> int:
    """Cores (not SMT siblings) in this process's affinity set, capped by a cgroup v2 CPU quota."""
    cores = set()
    for cpu in _cpus():
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topology / "physical_package_id").read_text().strip() + ":" + (topology / "core_id").read_text().strip())
        except OSError:
            cores.add(str(cpu))  # no topology (not Linux): count logical CPUs
    return max(1, min(len(cores), _quota() or len(cores)))


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def _quota() -> int | None:
    """The cgroup v2 CPU limit in whole cores (a container started with --cpus=N), or None."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else max(1, math.floor(int(quota) / int(period)))


def busy_cores(seconds: float = 0.1) -> float:
    """Cores of our affinity set that other processes keep busy now: /proc/stat sampled over `seconds`
    (this process sleeps meanwhile, so all of it is someone else's)."""
    ours = {f"cpu{c}" for c in _cpus()}

    def sample() -> dict[str, tuple[int, int]]:
        out = {}
        for line in Path("/proc/stat").read_text().splitlines():
            name, *fields = line.split()
            if name in ours:
                ticks = [int(x) for x in fields[:8]]
                out[name] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))  # (busy, total); idle and iowait are not busy
        return out

    try:
        before = sample()
        time.sleep(seconds)
        after = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return sum((after[c][0] - before[c][0]) / max(1, after[c][1] - before[c][1]) for c in after if c in before)


def default_threads(workers: int = 1) -> int:
    """Free physical cores, shared between `workers` processes; at least one."""
    free = physical_cores() - round(busy_cores())
    return max(1, free // max(1, workers))


def use_threads(threads: int | None = None, workers: int = 1) -> int:
    """Set torch's intra-op threads to `threads`, or to the default; returns the number used."""
    import torch

    n = threads if threads else default_threads(workers)
    torch.set_num_threads(n)
    return n
