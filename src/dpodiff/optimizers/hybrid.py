"""The hybrid optimiser: EPO whose first generation is drawn from the distribution GPO learned."""

from __future__ import annotations

import torch

from dpodiff.optimizers.evolution import Evolution
from dpodiff.optimizers.gradient import categorical_sampler


class Hybrid(Evolution):
    """EPO (evolution.py) seeded by GPO: generation 0 samples GPO's softmax(logits); under --protocol paper
    the learned argmax leads it, as the reference code does."""

    name = "hybrid"

    def __init__(self, sizes: list[int], logits: list[torch.Tensor], seed: int = 0, sampling: str = "sparse", argmax_first: bool = False):
        argmax = tuple(int(z.argmax()) for z in logits) if argmax_first else None
        super().__init__(sizes, seed=seed, init=categorical_sampler(logits), sampling=sampling, first=argmax)

    @classmethod
    def build(cls, sizes: list[int], seed: int, logits, sampling: str, argmax_first: bool) -> "Hybrid":
        return cls(sizes, logits, seed=seed, sampling=sampling, argmax_first=argmax_first)
