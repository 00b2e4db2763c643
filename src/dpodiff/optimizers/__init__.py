"""Optimisers behind one ask/tell interface: random search and EPO (GPO and hybrid build on it)."""

from dpodiff.errors import UsageError
from dpodiff.optimizers.base import Candidate, Optimizer
from dpodiff.optimizers.evolution import Evolution
from dpodiff.optimizers.gradient import DistributionSampler, GPOSettings, categorical_sampler
from dpodiff.optimizers.random_search import RandomSearch

from dpodiff.defaults import ALGORITHMS, WHITE_BOX


def make_optimizer(name: str, sizes: list[int], seed: int = 0, logits=None, sampling: str = "sparse", argmax_first: bool = False) -> Optimizer:
    """The discrete optimiser for `name`; gpo and hybrid take the logits GPO learned; `sampling` is how
    random search and EPO draw fresh candidates (sparse, or the paper's uniform); `argmax_first` leads the
    hybrid's first generation with the learned argmax (the paper's reference code does)."""
    if name not in ALGORITHMS:
        raise UsageError(f"--algo {name!r} is not known; choose one of {', '.join(ALGORITHMS)}.")
    if name in WHITE_BOX and logits is None:
        raise ValueError(f"{name} needs the logits learned by GPO")
    if name == "random":
        return RandomSearch(sizes, seed=seed, sampling=sampling)
    if name == "epo":
        return Evolution(sizes, seed=seed, sampling=sampling)
    if name == "gpo":
        return DistributionSampler(sizes, logits, seed=seed)
    argmax = tuple(int(z.argmax()) for z in logits) if argmax_first else None
    hybrid = Evolution(sizes, seed=seed, init=categorical_sampler(logits), sampling=sampling, first=argmax)
    hybrid.name = "hybrid"
    return hybrid


__all__ = ["ALGORITHMS", "WHITE_BOX", "Candidate", "DistributionSampler", "Evolution", "GPOSettings", "Optimizer", "RandomSearch", "make_optimizer"]
