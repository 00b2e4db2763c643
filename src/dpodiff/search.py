"""The ask/tell loop: a shared budget, a cache so nothing is scored twice, and the constraint.

The optimiser only proposes. This loop scores the original candidate first,
then asks for batches until `budget` candidates have been scored, the space is
exhausted, or the user presses Ctrl-C. A candidate the constraint rejects costs
no evaluation; the optimiser is told math.inf for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from dpodiff.optimizers.base import Candidate, Optimizer


@dataclass
class SearchOutcome:
    evaluated: int = 0  # candidates scored (original included)
    rejected: int = 0  # candidates the constraint turned away, never scored
    cache_hits: int = 0  # proposals answered from the cache
    stop_reason: str = ""  # "budget", "exhausted", "interrupted" or "stalled"


def run_search(
    optimizer: Optimizer,
    original: Candidate,
    objective: Callable[[Candidate], float],
    budget: int,
    admissible: Callable[[Candidate], bool] | None = None,
    max_idle_rounds: int = 5,
) -> SearchOutcome:
    """Minimise `objective` over the optimiser's proposals within `budget` scored candidates."""
    cache: dict[Candidate, float] = {}
    outcome = SearchOutcome()
    idle = 0
    try:
        cache[original] = objective(original)
        optimizer.tell(original, cache[original])
        outcome.evaluated = 1
        while outcome.evaluated < budget:
            if len(cache) >= optimizer.space_size():
                outcome.stop_reason = "exhausted"
                break
            progressed = False
            for candidate in optimizer.ask():
                if outcome.evaluated >= budget:
                    break
                if candidate in cache:
                    outcome.cache_hits += 1
                    optimizer.tell(candidate, cache[candidate])
                    continue
                progressed = True
                if admissible is not None and not admissible(candidate):
                    outcome.rejected += 1
                    cache[candidate] = math.inf
                    optimizer.tell(candidate, math.inf)
                    continue
                cache[candidate] = objective(candidate)
                optimizer.tell(candidate, cache[candidate])
                outcome.evaluated += 1
            idle = 0 if progressed else idle + 1
            if idle >= max_idle_rounds:
                outcome.stop_reason = "stalled"
                break
        else:
            outcome.stop_reason = "budget"
    except KeyboardInterrupt:
        outcome.stop_reason = "interrupted"
    return outcome
