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
from dataclasses import dataclass

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
    cache: dict[Candidate, float] = {}
    outcome = SearchOutcome()
    idle = 0

    def score(candidates: list[Candidate]) -> None:
        try:
            values = objective(candidates)
        except BatchInterrupted as e:
            values = e.values[: len(candidates)]
            tell(candidates[: len(values)], values)  # what was scored before the interrupt counts
            raise
        tell(candidates, values)

    def tell(candidates: list[Candidate], values: list[float]) -> None:
        for candidate, value in zip(candidates, values):
            cache[candidate] = value
            optimizer.tell(candidate, value)
            outcome.evaluated += 1

    try:
        score([original])
        while outcome.evaluated < budget:
            if len(cache) >= optimizer.space_size():
                outcome.stop_reason = "exhausted"
                break
            fresh: list[Candidate] = []
            rejected_before = outcome.rejected
            for candidate in optimizer.ask():
                if candidate in fresh:
                    continue
                if candidate in cache:
                    outcome.cache_hits += 1
                    optimizer.tell(candidate, cache[candidate])
                elif admissible is not None and not admissible(candidate):
                    outcome.rejected += 1
                    cache[candidate] = math.inf
                    optimizer.tell(candidate, math.inf)
                elif len(fresh) < budget - outcome.evaluated:
                    fresh.append(candidate)
            if fresh:
                score(fresh)
            idle = 0 if fresh or outcome.rejected > rejected_before else idle + 1
            if idle >= max_idle_rounds:
                outcome.stop_reason = "stalled"
                break
        else:
            outcome.stop_reason = "budget"
    except KeyboardInterrupt:
        outcome.stop_reason = "interrupted"
    return outcome
