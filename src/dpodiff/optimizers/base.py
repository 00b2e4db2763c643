"""The optimiser contract: propose candidates (ask), receive their losses (tell).

An optimiser never knows what is being optimised: it sees the number of
choices of each gene and a loss to MINIMISE for each candidate it proposed
(math.inf for a candidate the constraint rejected). Budget, caching and
constraints belong to the search loop (dpodiff.search), not here.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

Candidate = tuple[int, ...]
Sampler = Callable[[random.Random], Candidate]  # draws one candidate


class Optimizer(ABC):
    name: str = ""

    def __init__(self, sizes: list[int], seed: int = 0):
        if not sizes or any(k < 1 for k in sizes):
            raise ValueError(f"every gene needs at least one choice, got sizes {sizes}")
        self.sizes = list(sizes)
        self.rng = random.Random(seed)
        self.told: dict[Candidate, float] = {}

    @abstractmethod
    def ask(self) -> list[Candidate]:
        """The next batch of candidates to score (may be empty when there is nothing new to try)."""

    def tell(self, candidate: Candidate, loss: float) -> None:
        self.told[candidate] = loss

    def settings(self) -> dict:
        """The optimiser's settings, for result files."""
        return {}

    # -- helpers shared by optimisers --------------------------------------------------
    def space_size(self) -> int:
        return math.prod(self.sizes)

    def uniform(self, rng: random.Random) -> Candidate:
        return tuple(rng.randrange(k) for k in self.sizes)

    def ranked(self) -> list[tuple[Candidate, float]]:
        """Told candidates with finite loss, best first (ties broken by the order they were told)."""
        return sorted(((c, l) for c, l in self.told.items() if math.isfinite(l)), key=lambda cl: cl[1])

    def novel(self, draw: Callable[[], Candidate], n: int, exclude: Iterable[Candidate] = (), tries: int = 200) -> list[Candidate]:
        """Up to n distinct candidates from `draw` that were neither told nor excluded."""
        seen = set(self.told) | set(exclude)
        out: list[Candidate] = []
        for _ in range(tries * max(n, 1)):
            if len(out) == n or len(seen) >= self.space_size():
                break
            c = draw()
            if c not in seen:
                seen.add(c)
                out.append(c)
        return out
