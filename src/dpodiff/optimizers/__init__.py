"""Optimisers behind one ask/tell interface: random search and EPO (GPO and hybrid build on it)."""

from dpodiff.errors import UsageError
from dpodiff.optimizers.base import Candidate, Optimizer
from dpodiff.optimizers.evolution import Evolution
from dpodiff.optimizers.random_search import RandomSearch

ALGORITHMS = {"random": RandomSearch, "epo": Evolution}


def make_optimizer(name: str, sizes: list[int], seed: int = 0) -> Optimizer:
    if name not in ALGORITHMS:
        raise UsageError(f"--algo {name!r} is not known; choose one of {', '.join(ALGORITHMS)}.")
    return ALGORITHMS[name](sizes, seed=seed)


__all__ = ["ALGORITHMS", "Candidate", "Evolution", "Optimizer", "RandomSearch", "make_optimizer"]
