"""The ask/tell loop: a shared budget, a cache so nothing is scored twice, and the constraint.

The optimiser only proposes. This loop scores the original candidate first,
then asks for batches until `budget` candidates have been scored, the space is
exhausted, or the user presses Ctrl-C. An objective that scores a batch in parts raises BatchInterrupted
with the values it has, so Ctrl-C keeps (and tells the optimiser) every candidate already scored. A candidate
the constraint rejects costs no evaluation; the optimiser is told math.inf for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from dpodiff.optimizers.base import Candidate, Optimizer


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C while an objective scored a batch: `values` are those of the batch's first candidates, scored before it."""

    def __init__(self, values: list[float]):
        super().__init__()
        self.values = list(values)


@dataclass
class SearchOutcome:
    evaluated: int = 0  # candidates scored (original included)
    rejected: int = 0  # candidates the constraint turned away, never scored
    cache_hits: int = 0  # proposals answered from the cache
    stop_reason: str = ""  # "budget", "exhausted", "interrupted" or "stalled"


def run_search(
    optimizer: Optimizer,
    original: Candidate,
    objective: Callable[[list[Candidate]], list[float]],
    budget: int,
    admissible: Callable[[Candidate], bool] | None = None,
    max_idle_rounds: int = 5,
) -> SearchOutcome:
    """Minimise `objective` over the optimiser's proposals within `budget` scored candidates.

    `objective` scores a list of candidates at once (so a backend can batch their images); the
    proposals of one ask() are scored together, cut to the budget left.
    """
    search = Search(optimizer, objective, budget, admissible)
    try:
        search.score([original])
        search.outcome.stop_reason = search.loop(max_idle_rounds)
    except KeyboardInterrupt:
        search.outcome.stop_reason = "interrupted"
    return search.outcome


@dataclass
class Search:
    """One search's state. What was scored is recorded once, in the optimiser's `told` (a rejected candidate as
    math.inf): that record is also the cache that answers a repeated proposal."""

    optimizer: Optimizer
    objective: Callable[[list[Candidate]], list[float]]
    budget: int
    admissible: Callable[[Candidate], bool] | None = None
    outcome: SearchOutcome = field(default_factory=SearchOutcome)

    def loop(self, max_idle_rounds: int) -> str:
        """Ask and score until the budget is spent; the reason it stopped."""
        idle = 0
        while self.outcome.evaluated < self.budget:
            if len(self.optimizer.told) >= self.optimizer.space_size():
                return "exhausted"
            rejected_before = self.outcome.rejected
            fresh = self.fresh(self.optimizer.ask())
            if fresh:
                self.score(fresh)
            idle = 0 if fresh or self.outcome.rejected > rejected_before else idle + 1
            if idle >= max_idle_rounds:
                return "stalled"
        return "budget"

    def fresh(self, proposed: list[Candidate]) -> list[Candidate]:
        """The proposals to score, cut to the budget left; a repeat is answered from the record, a rejected one costs nothing."""
        told, fresh = self.optimizer.told, []
        for candidate in proposed:
            if candidate in fresh:
                continue
            if candidate in told:
                self.outcome.cache_hits += 1
                self.optimizer.tell(candidate, told[candidate])
            elif self.admissible is not None and not self.admissible(candidate):
                self.outcome.rejected += 1
                self.optimizer.tell(candidate, math.inf)
            elif len(fresh) < self.budget - self.outcome.evaluated:
                fresh.append(candidate)
        return fresh

    def score(self, candidates: list[Candidate]) -> None:
        try:
            values = self.objective(candidates)
        except BatchInterrupted as e:
            values = e.values[: len(candidates)]
            self.tell(candidates[: len(values)], values)  # what was scored before the interrupt counts
            raise
        self.tell(candidates, values)

    def tell(self, candidates: list[Candidate], values: list[float]) -> None:
        for candidate, value in zip(candidates, values):
            self.optimizer.tell(candidate, value)
            self.outcome.evaluated += 1
