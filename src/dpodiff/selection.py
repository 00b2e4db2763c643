"""Validated selection: the search's shortlist rendered again on fresh seeds, and the user's prompt kept
unless a candidate beats it beyond seed noise.

The lowest loss among ~40 candidates on 2 seeds is mostly seed luck (best-of-N over a noisy proxy): on
held-out prompts it lowered the judge's pass rate on new seeds. So the original and the top K candidates
by search loss are rendered on V seeds the search never saw, and each candidate's paired improvement over
the original on those seeds (only those: the search seeds chose it and would flatter it) gets a one-sided
paired t-test at 5%/K (Bonferroni: with K tries, the chance that any candidate no better than the original
passes stays under 5%; testing only the best-looking of K on the seeds that made it look best would not).
Among the candidates that pass, the winner has the best mean loss over all its seeds (the search's and the
validation's) or, given a second scorer (--select-scorer, a judge the search never optimised), the best
average of its rank under both. When none passes, the original is kept.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import stats

if TYPE_CHECKING:
    from dpodiff.evaluator import Evaluator, Scored
    from dpodiff.objectives.scorer import Scorer
    from dpodiff.results import Evaluation

TEST = "one-sided paired t-test on the validation seeds at 5% / K (Bonferroni over the K shortlisted candidates)"
LEVEL = 0.95  # the family-wise level: every test of a shortlist of K runs at 1 - (1 - LEVEL) / K


@dataclass
class Finalist:
    """A shortlisted candidate rendered on the validation seeds."""

    index: int  # in the search's history (0: the original)
    prompt: str
    negative_prompt: str
    search_loss: float  # mean over the search seeds
    losses: list[float]  # one per validation seed
    loss: float  # mean over all its seeds, the search's and the validation's
    judged: list[bool] | None = None  # the judge's verdict per validation seed
    second_loss: float | None = None  # --select-scorer's mean loss over all its seeds


@dataclass
class Selection:
    seeds: list[int]  # the validation seeds, disjoint from the search's
    finalists: list[Finalist]  # the original first, then the shortlist by search loss
    winner: int  # history index of the chosen candidate
    challenger: int | None  # history index of the winner, or of the best finalist when none passed (None: nothing to compare)
    improvement: float | None  # mean over the validation seeds of sign * (original's loss - challenger's): > 0 is better
    interval: list[float] | None  # two-sided t interval of the improvement at `level`: its low end > 0 exactly when the test passes
    p_value: float | None  # one-sided, Bonferroni-adjusted (times K, at most 1): below 1 - LEVEL beats the original
    kept_original: bool
    select_scorer: str | None = None  # the second scorer that re-ranked the shortlist
    level: float = 1 - 2 * (1 - LEVEL)  # of the interval
    test: str = TEST

    @property
    def images(self) -> int:
        return len(self.finalists) * len(self.seeds)

    def finalist(self, index: int) -> Finalist | None:
        return next((f for f in self.finalists if f.index == index), None)

    def summary(self) -> str:
        """One sentence for people: the improvement with its interval, and whether it is beyond noise."""
        if self.improvement is None:
            return "no candidate to compare with the original on the validation seeds; the original is kept"
        low, high = self.interval
        tried = len(self.finalists) - 1
        numbers = (f"{self.improvement:+.4f} loss on {len(self.seeds)} fresh seeds ({self.level:.1%} interval {low:+.4f} to {high:+.4f}, "
                   f"p = {self.p_value:.3f} adjusted for {tried} candidate{'s' if tried > 1 else ''})")
        if self.kept_original:
            return f"no candidate beat the original beyond noise: the best shortlisted one gained {numbers}; the original is kept"
        return f"the chosen candidate beats the original beyond noise: {numbers}"


def select(history: list[Evaluation], sign: int, evaluator: Evaluator, shortlist_size: int, seeds: list[int],
           on_finalist: Callable[[int, int], None] | None = None, second: Scorer | None = None,
           search_images: dict[int, Scored] | None = None) -> tuple[Selection, list[Scored]]:
    """Render the original (history[0]) and the `shortlist_size` best other candidates on `seeds`, and choose.

    Returns the selection and each finalist's images on the validation seeds; `on_finalist(done, total)` is
    called as each finalist is scored. A `second` scorer re-ranks the shortlist on every image of each finalist:
    those of the validation seeds and its search-seed images in `search_images` (history index -> images).
    """
    original, *others = history
    shortlist = [original] + sorted(others, key=lambda e: (sign * e.loss, e.index))[:shortlist_size]
    scored = []
    for s in evaluator.evaluate([(e.prompt, e.negative_prompt) for e in shortlist], seeds):
        scored.append(s)
        if on_finalist:
            on_finalist(len(scored), len(shortlist))
    finalists = [Finalist(e.index, e.prompt, e.negative_prompt, e.loss, s.losses, float(np.mean(e.losses + s.losses)), s.passed)
                 for e, s in zip(shortlist, scored)]
    name = None
    if second is not None:
        name = second.name
        for f, s in zip(finalists, scored):
            pixels = torch.cat([search_images[f.index].pixels, s.pixels]) if search_images and f.index in search_images else s.pixels
            with torch.inference_mode():
                f.second_loss = float(second.loss(pixels, second.target(evaluator.original)).mean())
    return decide(finalists, sign, seeds, name), scored


def decide(finalists: list[Finalist], sign: int, seeds: list[int] | None = None, select_scorer: str | None = None) -> Selection:
    """The rule on rendered finalists (the original first). The challenger is the best passing candidate by
    `rank_key`, or the best of all when none passes; the original is kept when none passes."""
    original, *shortlist = finalists
    seeds = list(seeds or [])
    if not shortlist:
        return Selection(seeds, finalists, original.index, None, None, None, None, True, select_scorer)
    k = len(shortlist)
    alpha = (1 - LEVEL) / k
    tests = {f.index: paired_improvement(original.losses, f.losses, sign, level=1 - 2 * alpha) for f in shortlist}
    passing = [f for f in shortlist if tests[f.index][2] < alpha]
    pool = passing or shortlist
    challenger = min(pool, key=rank_key(pool, sign))
    improvement, interval, p = tests[challenger.index]
    return Selection(seeds, finalists, challenger.index if passing else original.index, challenger.index, improvement, interval,
                     min(1.0, p * k), kept_original=not passing, select_scorer=select_scorer, level=1 - 2 * alpha)


def rank_key(candidates: list[Finalist], sign: int):
    """Sort key of the challengers: the search's loss over all seeds, or, where a second scorer scored them,
    the mean of the two ranks (ties to the search's loss, then the earlier candidate)."""
    def ranks(value) -> dict[int, int]:
        return {f.index: r for r, f in enumerate(sorted(candidates, key=lambda f: (value(f), f.index)))}

    primary = ranks(lambda f: sign * f.loss)
    secondary = ranks(lambda f: sign * f.second_loss) if candidates and candidates[0].second_loss is not None else primary
    return lambda f: ((primary[f.index] + secondary[f.index]) / 2, sign * f.loss, f.index)


def paired_improvement(original: list[float], candidate: list[float], sign: int = 1,
                       level: float = 1 - 2 * (1 - LEVEL)) -> tuple[float, list[float], float]:
    """(mean, two-sided interval at `level`, one-sided p-value) of the per-seed improvements sign * (original - candidate).

    A t-test on the paired differences: the seed's noise is shared by both images of a pair, so the test
    sees only what the prompts change. With identical differences the interval is a point and p is 0 or 1.
    """
    d = sign * (np.asarray(original, dtype=float) - np.asarray(candidate, dtype=float))
    if len(d) < 2:
        raise ValueError("a paired test needs at least 2 seeds")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0 or not math.isfinite(sd):
        return mean, [mean, mean], 0.0 if mean > 0 else 1.0
    se = sd / math.sqrt(len(d))
    half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1)) * se
    return mean, [mean - half, mean + half], float(stats.t.sf(mean / se, len(d) - 1))
