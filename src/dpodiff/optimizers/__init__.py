"""Optimisers behind one ask/tell interface (base.py), one file each, listed in dpodiff.registry.OPTIMIZERS."""

from dpodiff.optimizers.base import Candidate, Optimizer
from dpodiff.optimizers.evolution import Evolution
from dpodiff.optimizers.gradient import DistributionSampler, GPOSettings, categorical_sampler
from dpodiff.optimizers.hybrid import Hybrid
from dpodiff.optimizers.random_search import RandomSearch
from dpodiff.registry import OPTIMIZERS

from dpodiff.defaults import ALGORITHMS, WHITE_BOX


def make_optimizer(name: str, sizes: list[int], seed: int = 0, logits=None, sampling: str = "sparse", argmax_first: bool = False) -> Optimizer:
    """The discrete optimiser for `name`; white-box ones (gpo, hybrid) take the logits GPO learned; `sampling` is
    how random search and EPO draw fresh candidates (sparse, or the paper's uniform); `argmax_first` leads the
    hybrid's first generation with the learned argmax (the paper's reference code does)."""
    entry = OPTIMIZERS[name]
    if entry.white_box and logits is None:
        raise ValueError(f"{name} needs the logits learned by GPO")
    return entry.load().build(sizes, seed=seed, logits=logits, sampling=sampling, argmax_first=argmax_first)


__all__ = ["ALGORITHMS", "WHITE_BOX", "Candidate", "DistributionSampler", "Evolution", "GPOSettings", "Hybrid", "Optimizer", "RandomSearch",
           "categorical_sampler", "make_optimizer"]
