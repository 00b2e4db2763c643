"""Validated selection: the search's shortlist rendered again on fresh seeds, and the user's prompt kept
unless a candidate beats it beyond seed noise.

The lowest loss among ~40 candidates on 2 seeds is mostly seed luck (best-of-N over a noisy proxy): on
held-out prompts it lowered the judge's pass rate on new seeds. So the original and the top K candidates
by search loss are rendered on seeds the search never saw, and each candidate's paired improvement over
the original on those seeds gets a one-sided paired t-test at 5%/K (Bonferroni: with K tries, the chance
that any candidate no better than the original passes stays under 5%).

Everything after the shortlist uses the validation seeds alone: the search seeds chose the shortlist and
flatter it (a winner's curse), so the winner among the passing candidates is the one with the best paired
improvement on the validation seeds (`rank="mean"`), or the best low end of its interval (`rank="lower"`);
given a second scorer (--select-scorer), the average of that rank and the second scorer's rank on the
validation images.

Adaptive validation (`looks`, e.g. (4, 8)): a group-sequential design with two or more looks. At every
look but the last, a candidate whose mean improvement so far is not above zero stops (futility) and is
rendered no more; the others and the original get the next look's seeds. The efficacy test spends all of
its 5%/K at the final look (an alpha-spending function that spends nothing before it), and stopping for
futility can only remove rejections, so the family-wise error stays under 5% whatever the interim data:
the savings come from not rendering candidates that already look no better.

A candidate with a non-finite loss on any seed is left out with a reason; the original must be finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import stats

from dpodiff.errors import UsageError

if TYPE_CHECKING:
    from dpodiff.evaluator import Evaluator, Scored
    from dpodiff.objectives.scorer import Scorer
    from dpodiff.results import Evaluation

TEST = "one-sided paired t-test on the validation seeds at 5% / K (Bonferroni over the K shortlisted candidates)"
LEVEL = 0.95  # the family-wise level: every test of a shortlist of K runs at 1 - (1 - LEVEL) / K
RANKS = ("mean", "lower")  # how the passing candidates are ordered: mean improvement, or the interval's low end


class NonFiniteLoss(UsageError):
    """The original prompt's loss is inf or NaN: nothing can be compared with it."""


@dataclass
class Finalist:
    """A shortlisted candidate rendered on the validation seeds."""

    index: int  # in the search's history (0: the original)
    prompt: str
    negative_prompt: str
    search_loss: float  # mean over the search seeds (it chose the shortlist; it ranks nothing after that)
    losses: list[float]  # one per validation seed it was rendered on
    judged: list[bool] | None = None  # the judge's verdict per validation seed
    second_loss: float | None = None  # --select-scorer's mean loss over its validation images
    excluded: str | None = None  # why it could not be chosen (a non-finite loss, stopped for futility); None: tested

    @property
    def loss(self) -> float:
        """Mean loss over the validation seeds."""
        return float(np.mean(self.losses)) if self.losses else math.nan


@dataclass
class PairedTest:
    """A finalist's paired improvement over the original on the validation seeds they share."""

    improvement: float  # mean of sign * (original's loss - candidate's) per seed: > 0 is better
    interval: list[float]  # two-sided t interval at the test's level: its low end > 0 exactly when p < alpha
    p_value: float  # one-sided, not adjusted


@dataclass
class Selection:
    seeds: list[int]  # the validation seeds the original was rendered on, disjoint from the search's
    finalists: list[Finalist]  # the original first, then the shortlist by search loss
    winner: int  # history index of the chosen candidate
    challenger: int | None  # history index of the winner, or of the finalist closest to passing (None: nothing to compare)
    improvement: float | None  # the challenger's mean improvement over the original on the validation seeds
    interval: list[float] | None  # two-sided t interval of the improvement at `level`: its low end > 0 exactly when the test passes
    p_value: float | None  # one-sided, Bonferroni-adjusted (times K, at most 1): below 1 - LEVEL beats the original
    kept_original: bool
    select_scorer: str | None = None  # the second scorer that re-ranked the shortlist
    level: float = 1 - 2 * (1 - LEVEL)  # of the interval
    test: str = TEST
    looks: list[int] = field(default_factory=list)  # validation seeds at each look: one look is the fixed design
    rank: str = "mean"
    excluded: list[dict] = field(default_factory=list)  # candidates kept off the shortlist (non-finite search loss), with why

    @property
    def images(self) -> int:
        return sum(len(f.losses) for f in self.finalists)

    def finalist(self, index: int) -> Finalist | None:
        return next((f for f in self.finalists if f.index == index), None)

    def summary(self) -> str:
        """One sentence for people: the improvement with its interval, and whether it is beyond noise."""
        if self.improvement is None:
            return "no candidate to compare with the original on the validation seeds; the original is kept"
        low, high = self.interval
        tried = len(self.finalists) - 1
        seeds = len(self.finalist(self.challenger).losses)
        numbers = (f"{self.improvement:+.4f} loss on {seeds} fresh seeds ({self.level:.1%} interval {low:+.4f} to {high:+.4f}, "
                   f"p = {self.p_value:.3f} adjusted for {tried} candidate{'s' if tried > 1 else ''})")
        if self.kept_original:
            return f"no candidate beat the original beyond noise: the one closest to passing gained {numbers}; the original is kept"
        return f"the chosen candidate beats the original beyond noise: {numbers}"


def shortlist_of(history: list[Evaluation], sign: int, size: int) -> tuple[list[Evaluation], list[dict]]:
    """The original and the `size` best other candidates by search loss, and the candidates left out for a
    non-finite loss on a search seed (their place in a sort would be arbitrary)."""
    original, *others = history
    check_original(original.losses, "search")
    why = {e.index: non_finite(e.losses, "search") for e in others}
    excluded = [{"index": i, "reason": reason} for i, reason in why.items() if reason]
    finite = [e for e in others if not why[e.index]]
    return [original] + sorted(finite, key=lambda e: (sign * e.loss, e.index))[:size], excluded


def select(history: list[Evaluation], sign: int, evaluator: Evaluator, shortlist_size: int, seeds: list[int],
           looks: Sequence[int] | None = None, on_finalist: Callable[[int, int], None] | None = None,
           second: Scorer | None = None, rank: str = "mean") -> tuple[Selection, list[Scored]]:
    """Render the original (history[0]) and the `shortlist_size` best other candidates on `seeds`, and choose.

    `looks` (cumulative seed counts, the last one len(seeds)) renders in rounds, each round only the original
    and the candidates still undecided. Returns the selection and each finalist's validation images (one
    Scored per finalist, in order); `on_finalist(done, total)` follows the rendering. A `second` scorer
    re-ranks the shortlist on the validation images.
    """
    from dpodiff.evaluator import joined

    looks = list(looks or [len(seeds)])
    if looks[-1] != len(seeds):
        raise ValueError(f"the last look ({looks[-1]}) must use every validation seed ({len(seeds)})")
    shortlist, excluded = shortlist_of(history, sign, shortlist_size)
    finalists = [Finalist(e.index, e.prompt, e.negative_prompt, e.loss, [], [] if evaluator.judge else None) for e in shortlist]
    parts: dict[int, list[Scored]] = {f.index: [] for f in finalists}
    progress = {"done": 0, "total": 0}

    def render(active: list[Finalist], start: int, stop: int) -> None:
        progress["total"] += len(active)
        for f, s in zip(active, evaluator.evaluate([(f.prompt, f.negative_prompt) for f in active], seeds[start:stop])):
            f.losses += s.losses
            f.judged = f.judged + s.passed if f.judged is not None and s.passed is not None else None
            parts[f.index].append(s)
            progress["done"] += 1
            if on_finalist:
                on_finalist(progress["done"], progress["total"])

    render_in_looks(finalists, sign, looks, render)
    scored = [joined(parts[f.index]) for f in finalists]
    if second is not None:
        for f, s in zip(finalists, scored):
            with torch.inference_mode():
                f.second_loss = float(second.loss(evaluator.rendered(s).pixels, second.target(evaluator.original)).mean())
    selection = decide(finalists, sign, looks, rank, second.name if second is not None else None)
    selection.seeds = seeds[: len(finalists[0].losses)]
    selection.excluded = excluded
    return selection, scored


def render_in_looks(finalists: list[Finalist], sign: int, looks: Sequence[int], render: Callable[[list[Finalist], int, int], None]) -> None:
    """The validation's rounds: `render(active, start, stop)` adds the validation seeds start..stop-1 to each
    active finalist (the original first); after every look but the last, the candidates that are no longer
    promising stop. select() renders images; replay() reads stored losses."""
    active, start = finalists, 0
    for look, n in enumerate(looks):
        render(active, start, n)
        start = n
        if look == len(looks) - 1:
            break
        original, *candidates = active
        check_original(original.losses, "validation")
        undecided = [f for f in candidates if promising(original, f, sign, n)]
        if not undecided:
            break
        active = [original] + undecided


def replay(finalists: list[Finalist], sign: int, looks: Sequence[int], rank: str = "mean") -> Selection:
    """The choice select() would have made on these finalists' stored validation losses (each at least
    looks[-1] long), rendering in `looks`: the same rule for benchmarks and the power table."""
    stored = {f.index: list(f.losses) for f in finalists}
    fresh = [Finalist(f.index, f.prompt, f.negative_prompt, f.search_loss, [], None, f.second_loss) for f in finalists]

    def render(active: list[Finalist], start: int, stop: int) -> None:
        for f in active:
            f.losses = stored[f.index][:stop]

    render_in_looks(fresh, sign, looks, render)
    return decide(fresh, sign, looks, rank)


def promising(original: Finalist, candidate: Finalist, sign: int, look: int) -> bool:
    """At an interim look: go on rendering a candidate only while it looks better than the original (futility
    stopping: a candidate with a mean improvement <= 0 on `look` seeds stops, with the reason recorded)."""
    why = non_finite(candidate.losses, "validation")
    if why is None:
        improvement = sign * (np.mean(original.losses[:look]) - np.mean(candidate.losses))
        if improvement > 0:
            return True
        why = f"stopped after {look} validation seeds: no better than the original there ({improvement:+.4f})"
    candidate.excluded = why
    return False


def decide(finalists: list[Finalist], sign: int, looks: Sequence[int] | None = None, rank: str = "mean",
           select_scorer: str | None = None) -> Selection:
    """The rule on rendered finalists (the original first). A candidate is tested when it was rendered on
    every seed of the final look and every loss is finite; it passes when its one-sided p < 5%/K. The winner
    is the best passing candidate by `rank` on the validation seeds; when none passes the original is kept,
    and the challenger reported is the tested candidate closest to passing (lowest p)."""
    if rank not in RANKS:
        raise ValueError(f"rank {rank!r} is not one of {', '.join(RANKS)}")
    original, *shortlist = finalists
    check_original(original.losses, "validation")
    looks = list(looks or [len(original.losses)])
    final = looks[-1]
    seeds: list[int] = []  # select() fills them in
    k = max(len(shortlist), 1)
    alpha = (1 - LEVEL) / k
    level = 1 - 2 * alpha
    tests: dict[int, PairedTest] = {}
    for f in shortlist:
        f.excluded = f.excluded or non_finite(f.losses, "validation")
        if f.excluded is None and len(f.losses) < final:
            f.excluded = f"rendered on {len(f.losses)} of the final look's {final} validation seeds"
        if f.excluded is None:
            tests[f.index] = PairedTest(*paired_improvement(original.losses[:final], f.losses, sign, level=level))
    tested = [f for f in shortlist if f.index in tests]
    if not tested:
        return Selection(seeds, finalists, original.index, None, None, None, None, True, select_scorer, level, looks=looks, rank=rank)
    passing = [f for f in tested if tests[f.index].p_value < alpha]
    if passing:
        challenger = min(passing, key=rank_key(passing, tests, sign, rank))
    else:
        challenger = min(tested, key=lambda f: (tests[f.index].p_value, -tests[f.index].improvement, f.index))
    test = tests[challenger.index]
    return Selection(seeds, finalists, challenger.index if passing else original.index, challenger.index, test.improvement,
                     test.interval, min(1.0, test.p_value * k), not passing, select_scorer, level, looks=looks, rank=rank)


def rank_key(candidates: list[Finalist], tests: dict[int, PairedTest], sign: int, rank: str = "mean"):
    """Sort key of the passing candidates, best first: by their improvement on the validation seeds (its mean,
    or its interval's low end), or, where a second scorer scored them, the mean of that rank and the second
    scorer's rank (ties to the first, then the earlier candidate). The search loss plays no part."""
    def merit(f: Finalist) -> float:
        return -(tests[f.index].improvement if rank == "mean" else tests[f.index].interval[0])

    def ranks(value) -> dict[int, int]:
        return {f.index: r for r, f in enumerate(sorted(candidates, key=lambda f: (value(f), f.index)))}

    primary = ranks(merit)
    secondary = primary
    if candidates and all(f.second_loss is not None for f in candidates):
        secondary = ranks(lambda f: sign * f.second_loss)
    return lambda f: ((primary[f.index] + secondary[f.index]) / 2, merit(f), f.index)


def non_finite(losses: Sequence[float], where: str) -> str | None:
    """Why these losses cannot be tested (the first inf or NaN), or None."""
    for i, loss in enumerate(losses):
        if not math.isfinite(loss):
            return f"loss {loss} on {where} seed {i + 1} of {len(losses)}"
    return None


def check_original(losses: Sequence[float], where: str) -> None:
    why = non_finite(losses, where)
    if why is not None:
        raise NonFiniteLoss(f"The original prompt's {why}: every candidate is compared with it, so nothing can be chosen. "
                            "A non-finite loss usually means the images overflowed: try --dtype float32, a lower --guidance, "
                            "or another --scorer.")


def paired_improvement(original: Sequence[float], candidate: Sequence[float], sign: int = 1,
                       level: float = 1 - 2 * (1 - LEVEL)) -> tuple[float, list[float], float]:
    """(mean, two-sided interval at `level`, one-sided p-value) of the per-seed improvements sign * (original - candidate).

    A t-test on the paired differences: the seed's noise is shared by both images of a pair, so the test
    sees only what the prompts change. With identical differences the interval is a point and p is 0 or 1.
    """
    d = sign * (np.asarray(original, dtype=float) - np.asarray(candidate, dtype=float))
    if len(d) < 2:
        raise ValueError("a paired test needs at least 2 seeds")
    if not np.isfinite(d).all():
        raise ValueError("a paired test needs finite losses (leave out the candidate, see selection.non_finite)")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        return mean, [mean, mean], 0.0 if mean > 0 else 1.0
    se = sd / math.sqrt(len(d))
    half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1)) * se
    return mean, [mean - half, mean + half], float(stats.t.sf(mean / se, len(d) - 1))
