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
SPARSE_MEAN_CHANGES = 2  # sparse sampling: genes away from their default, on average (geometric, at least one)


class Optimizer(ABC):
    name: str = ""

    def __init__(self, sizes: list[int], seed: int = 0, sampling: str = "sparse"):
        if not sizes or any(k < 1 for k in sizes):
            raise ValueError(f"every gene needs at least one choice, got sizes {sizes}")
        if sampling not in ("sparse", "uniform"):
            raise ValueError(f"sampling must be sparse or uniform, got {sampling!r}")
        self.sizes = list(sizes)
        self.rng = random.Random(seed)
        self.sampling = sampling
        self.told: dict[Candidate, float] = {}

    @abstractmethod
    def ask(self) -> list[Candidate]:
        """The next batch of candidates to score (may be empty when there is nothing new to try)."""

    def tell(self, candidate: Candidate, loss: float) -> None:
        """Record a loss. `told` is the search's one record of what was scored (search.py reads it as its cache), so an
        optimiser that overrides this calls it too."""
        self.told[candidate] = loss

    def settings(self) -> dict:
        """The optimiser's settings, for result files."""
        return {}

    @classmethod
    def build(cls, sizes: list[int], seed: int, logits, sampling: str, argmax_first: bool) -> "Optimizer":
        """The optimiser for a search (make_optimizer's arguments); black-box ones ignore the logits."""
        return cls(sizes, seed=seed, sampling=sampling)

    # -- helpers shared by optimisers --------------------------------------------------
    def space_size(self) -> int:
        return math.prod(self.sizes)

    def uniform(self, rng: random.Random) -> Candidate:
        """Every gene uniform over its choices (the paper's sampling: most slots get filled)."""
        return tuple(rng.randrange(k) for k in self.sizes)

    def sparse(self, rng: random.Random) -> Candidate:
        """Gene 0 is each gene's default (the empty negative slot, the prompt's own word), the natural
        starting point: change K genes, K geometric with mean SPARSE_MEAN_CHANGES (P(K=k) = p(1-p)^(k-1),
        p = 1/mean, capped at the genes that have a choice), chosen uniformly, each to a uniform non-default choice."""
        mutable = [i for i, k in enumerate(self.sizes) if k > 1]
        changes = 1
        while changes < len(mutable) and rng.random() >= 1 / SPARSE_MEAN_CHANGES:
            changes += 1
        genes = [0] * len(self.sizes)
        for i in rng.sample(mutable, min(changes, len(mutable))):
            genes[i] = rng.randrange(1, self.sizes[i])
        return tuple(genes)

    def fresh(self, rng: random.Random) -> Candidate:
        """A fresh candidate, drawn as `sampling` says."""
        return self.sparse(rng) if self.sampling == "sparse" else self.uniform(rng)

    def ranked(self) -> list[tuple[Candidate, float]]:
        """Told candidates with finite loss, best first (ties broken by the order they were told)."""
        return sorted(((c, l) for c, l in self.told.items() if math.isfinite(l)), key=lambda cl: cl[1])

    def novel_or_uniform(self, draw: Callable[[], Candidate], n: int, exclude: Iterable[Candidate] = ()) -> list[Candidate]:
        """Up to n new candidates from `draw`, filled up with uniform ones when a narrow `draw` runs dry."""
        batch = self.novel(draw, n, exclude)
        return batch + self.novel(lambda: self.uniform(self.rng), n - len(batch), exclude=[*exclude, *batch])

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
