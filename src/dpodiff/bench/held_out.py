"""bench --eval-seeds: the original and the chosen prompt judged on seeds that neither the search nor the
validation saw, so the headline numbers carry no selection bias.

Besides the two that matter, every candidate some rule might have chosen is rendered too (a few images
each, and the model is loaded already): the plain arg-min of the search seeds (what --no-validate picks),
every shortlisted finalist (so benchmarks/improve_quality.py can replay validated selection with a smaller
K or V), and the candidate the judge liked best on the search seeds ("best reachable").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from dpodiff.evaluator import Evaluator, fresh_seeds
from dpodiff.results import OptimizationResult

EVAL_SEED_START = 1000  # evaluation seeds count up from here (skipping any the run used), the same for every run


@dataclass
class HeldOutCandidate:
    index: int  # in the run's history
    roles: list[str]  # original, chosen, argmin, finalist, judge_best
    prompt: str
    negative_prompt: str
    losses: list[float]  # one per evaluation seed
    judged: list[bool] | None  # the judge's verdict per evaluation seed


@dataclass
class HeldOut:
    seeds: list[int]
    candidates: list[HeldOutCandidate] = field(default_factory=list)

    def of(self, role: str) -> HeldOutCandidate:
        return next(c for c in self.candidates if role in c.roles)

    def to_dict(self) -> dict:
        return asdict(self)


def evaluation_seeds(result: OptimizationResult, n: int) -> list[int]:
    return fresh_seeds(result.image_seeds, n, start=EVAL_SEED_START)


def judge_held_out(result: OptimizationResult, evaluator: Evaluator, n_seeds: int) -> HeldOut:
    """Render and judge the original, the chosen candidate and the other possible picks on `n_seeds` evaluation seeds."""
    roles: dict[int, list[str]] = {}
    sign = result.sign

    def add(index: int, role: str) -> None:
        roles.setdefault(index, []).append(role)

    add(result.original.index, "original")
    add(result.best.index, "chosen")
    add(result.top(1)[0].index, "argmin")
    for finalist in result.selection.finalists[1:] if result.selection else []:
        add(finalist.index, "finalist")
    if all(e.judged is not None for e in result.history):
        liked = max(result.history, key=lambda e: (sum(e.judged), -sign * e.loss, -e.index))
        add(liked.index, "judge_best")
    held_out = HeldOut(evaluation_seeds(result, n_seeds))
    chosen = [result.history[i] for i in roles]
    for e, scored in zip(chosen, evaluator.evaluate([(e.prompt, e.negative_prompt) for e in chosen], held_out.seeds)):
        held_out.candidates.append(HeldOutCandidate(e.index, roles[e.index], e.prompt, e.negative_prompt, scored.losses, scored.passed))
    return held_out


def pass_changes(before: list[bool] | None, after: list[bool] | None) -> dict[str, float | None]:
    """Fractions of the evaluation images (0-1): passing before and after, repaired (failed, now passes) and
    broken (passed, now fails); so after = before + repaired - broken. None without the judge's verdicts."""
    if not before or not after:
        return {"judge_before_eval": None, "judge_after_eval": None, "repaired_eval": None, "broken_eval": None}
    n = len(before)
    return {"judge_before_eval": sum(before) / n, "judge_after_eval": sum(after) / n,
            "repaired_eval": sum(not b and a for b, a in zip(before, after)) / n,
            "broken_eval": sum(b and not a for b, a in zip(before, after)) / n}
