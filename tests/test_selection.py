"""Validated selection: the paired test's numbers, the choice on the shapes world, and what optimize() records."""

import json
import math

import numpy as np
import pytest
from scipy import stats

import dpodiff
from dpodiff.config import parse_validate
from dpodiff.errors import UsageError
from dpodiff.evaluator import Evaluator, fresh_seeds
from dpodiff.results import Evaluation
from dpodiff.selection import Finalist, decide, paired_improvement, select


def test_paired_improvement_is_scipys_one_sided_paired_t_test():
    original, candidate = [0.30, 0.25, 0.28, 0.33, 0.27], [0.26, 0.24, 0.29, 0.30, 0.22]
    mean, (low, high), p = paired_improvement(original, candidate)
    d = np.subtract(original, candidate)
    assert mean == pytest.approx(d.mean())
    assert p == pytest.approx(stats.ttest_rel(original, candidate, alternative="greater").pvalue)
    half = stats.t.ppf(0.95, 4) * d.std(ddof=1) / math.sqrt(5)  # 90% two-sided: its low end > 0 exactly when p < 5%
    assert (low, high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert paired_improvement(original, candidate, level=0.99)[1][0] < low
    # attack maximises: the same numbers with the sign turned round
    mean_a, _, p_a = paired_improvement(original, candidate, sign=-1)
    assert mean_a == pytest.approx(-mean) and p_a == pytest.approx(1 - p)
    # identical differences: no spread, so the sign decides
    assert paired_improvement([1.0, 2.0], [0.5, 1.5])[2] == 0.0
    assert paired_improvement([1.0, 2.0], [1.0, 2.0])[2] == 1.0
    with pytest.raises(ValueError):
        paired_improvement([1.0], [0.5])


def finalist(index, losses, search_loss=0.3):
    return Finalist(index, f"p{index}", "", search_loss, losses, float(np.mean([search_loss] * 2 + losses)))


def test_each_candidate_is_tested_at_five_percent_over_k_and_the_best_passing_one_wins():
    original = finalist(0, [0.30, 0.31, 0.29, 0.30])
    steady = finalist(1, [0.29, 0.30, 0.28, 0.29])  # 0.01 better on every seed: p ~ 0
    lucky = finalist(2, [0.10, 0.35, 0.12, 0.36], search_loss=0.1)  # the best mean, but noise
    chosen = decide([original, lucky, steady], sign=1)
    assert chosen.winner == steady.index and chosen.challenger == steady.index and not chosen.kept_original
    assert chosen.improvement == pytest.approx(0.01) and chosen.p_value < 1e-9 and chosen.level == pytest.approx(0.95)
    # alone, a candidate with a one-sided p between 5%/3 and 5% beats the original...
    borderline = finalist(3, [0.28, 0.31, 0.27, 0.29])
    p_alone = paired_improvement(original.losses, borderline.losses)[2]
    assert 0.05 / 3 < p_alone < 0.05
    assert not decide([original, borderline], 1).kept_original
    # ...but not as one of three tries; then the best of all by loss is reported, its p adjusted (times 3)
    chosen = decide([original, borderline, lucky, finalist(4, [0.31, 0.30, 0.30, 0.31])], 1)
    assert chosen.kept_original and chosen.winner == original.index and chosen.challenger == lucky.index
    assert chosen.interval[0] < 0 < chosen.interval[1]
    assert chosen.p_value == pytest.approx(min(1.0, 3 * paired_improvement(original.losses, lucky.losses)[2]))
    nothing = decide([original], 1)
    assert nothing.challenger is None and nothing.kept_original and nothing.winner == original.index


def test_fresh_seeds_never_reuse_a_seed():
    assert fresh_seeds([0, 1], 4) == [2, 3, 4, 5]
    assert fresh_seeds([3, 7], 3) == [8, 9, 10]
    assert fresh_seeds([0, 1, 1001], 3, start=1000) == [1000, 1002, 1003]


def test_parse_validate():
    assert parse_validate("4,2") == (4, 2) and parse_validate([1, 3]) == (1, 3) and parse_validate(None) is None
    for bad in ("4", "a,b", "0,4", "4,1", "1,2,3"):
        with pytest.raises(UsageError, match="--validate"):
            parse_validate(bad)


@pytest.fixture(scope="module")
def shapes():
    from dpodiff.models import load_models
    from dpodiff.objectives.judge import find_judge

    backend, scorer, name = load_models(None, None, "cpu", "float32")
    config = dpodiff.config.RunConfig(steps=10, guidance=3.0).resolved()
    return Evaluator(backend, scorer, config.generation(8), "a red circle", find_judge(name))


def history_of(evaluator, pairs, seeds):
    return [Evaluation(i, [i], s.prompt, s.negative_prompt, s.loss, s.losses, s.seconds, judged=s.passed)
            for i, s in enumerate(evaluator.score(pairs, seeds))]


def test_a_clearly_better_candidate_replaces_the_original_and_noise_does_not(shapes):
    # attack (sign -1) on the shapes world: a green triangle is far from "a red circle" on every seed
    pairs = [("a red circle", ""), ("a red circle", "blue"), ("a green triangle", "")]
    history = history_of(shapes, pairs, [0, 1])
    selection, scored = select(history, -1, shapes, 2, [2, 3, 4, 5])
    assert [f.index for f in selection.finalists][0] == 0 and len(scored) == 3
    assert selection.challenger == 2 and selection.winner == 2 and not selection.kept_original
    assert selection.improvement > 0 and selection.interval[0] > 0 and selection.p_value < 0.05
    assert all(len(f.losses) == 4 for f in selection.finalists)
    # the finalist's losses are the evaluator's on the validation seeds, and its loss the mean over all six seeds
    again = shapes.score([pairs[2]], [2, 3, 4, 5])[0]
    finalist = selection.finalist(2)
    assert finalist.losses == pytest.approx(again.losses, abs=1e-6)
    assert finalist.loss == pytest.approx(np.mean(history[2].losses + again.losses))
    # improve (sign +1): the same wrong prompt is no improvement; the original is kept, and the summary says so
    selection, _ = select(history, 1, shapes, 1, [2, 3])
    assert selection.kept_original and selection.winner == 0 and selection.p_value > 0.05
    assert "no candidate beat the original beyond noise" in selection.summary()
    # a candidate identical to the original cannot beat it
    twin = history_of(shapes, [pairs[0], pairs[0]], [0, 1])
    selection, _ = select(twin, 1, shapes, 4, [2, 3])
    assert selection.kept_original and selection.improvement == 0.0


def test_only_the_original_means_nothing_to_compare(shapes):
    history = history_of(shapes, [("a red circle", "")], [0])
    selection, _ = select(history, 1, shapes, 4, [1, 2])
    assert selection.challenger is None and selection.kept_original and selection.winner == 0
    assert "nothing" not in selection.summary() and "original is kept" in selection.summary()


def test_optimize_validates_the_shortlist_and_records_it(tiny_pipe, tiny_scorer, tmp_path):
    from dpodiff.spaces import SearchSpace, Slot

    prompt = "a red circle above a blue square"
    space = SearchSpace(prompt, negative=[Slot("red", ["blue", "green", "yellow"]), Slot("quality", ["blurry", "low quality"])])
    options = dict(task="improve", space=space, algorithm="random", budget=8, seeds=[0, 1], steps=3)
    result = dpodiff.optimize(prompt, pipeline=tiny_pipe, scorer=tiny_scorer, validate=(3, 2), **options)
    selection = result.selection
    assert selection.seeds == [2, 3] and result.image_seeds == [0, 1, 2, 3]
    shortlist = sorted(result.history[1:], key=lambda e: (e.loss, e.index))[:3]
    assert [f.index for f in selection.finalists] == [0] + [e.index for e in shortlist]
    assert result.best is result.history[selection.winner]
    assert selection.winner == (0 if selection.kept_original else selection.challenger)
    assert len(result.images["original"]) == len(result.images["best"]) == 4
    assert result.seed_losses(result.original) == result.original.losses + selection.finalists[0].losses
    result.save(tmp_path)
    data = json.loads((tmp_path / "result.json").read_text())
    assert data["validation_image_evaluations"] == 8 and data["image_evaluations"] == 16
    assert data["selection"]["kept_original"] == selection.kept_original and data["selection"]["summary"] == selection.summary()
    assert data["config"]["validate"] == [3, 2]
    assert {p.name for p in tmp_path.glob("best_seed*.png")} == {f"best_seed{s}.png" for s in range(4)}
    # --no-validate: the paper's plain arg-min, the same search
    plain = dpodiff.optimize(prompt, pipeline=tiny_pipe, scorer=tiny_scorer, validate=None, **options)
    assert plain.selection is None and plain.best.loss == min(e.loss for e in plain.history)
    assert [e.losses for e in plain.history] == [e.losses for e in result.history]
    assert len(plain.images["best"]) == 2 and plain.to_dict()["validation_image_evaluations"] == 0


def test_rank_key_averages_the_two_scorers_ranks():
    from dpodiff.selection import Finalist, rank_key

    def finalist(index, loss, second):
        return Finalist(index, "p", "", loss, [loss, loss], loss, None, second)

    a, b, c = finalist(1, 0.10, 0.9), finalist(2, 0.20, 0.1), finalist(3, 0.30, 0.2)
    # ranks: a (0, 2) -> 1.0; b (1, 0) -> 0.5; c (2, 1) -> 1.5: the second scorer's favourite b wins
    assert min([a, b, c], key=rank_key([a, b, c], 1)) is b
    # without a second scorer, the search's loss decides
    plain = [finalist(1, 0.10, None), finalist(2, 0.20, None)]
    assert min(plain, key=rank_key(plain, 1)) is plain[0]
    # attack: the highest loss ranks first
    assert min(plain, key=rank_key(plain, -1)) is plain[1]


def test_select_scorer_rescores_every_image_of_each_finalist(tiny_pipe, tiny_scorer, tmp_path):
    from dpodiff.backends import GenerationSettings
    from dpodiff.objectives.clip_loss import ClipScorer
    from dpodiff.spaces import SearchSpace, Slot
    from dpodiff.testing import build_tiny_scorer

    second_dir = build_tiny_scorer(tmp_path / "second", seed=7)
    prompt = "a red circle above a blue square"
    space = SearchSpace(prompt, negative=[Slot("red", ["blue", "green", "yellow"]), Slot("quality", ["blurry", "low quality"])])
    result = dpodiff.optimize(prompt, pipeline=tiny_pipe, scorer=tiny_scorer, task="improve", space=space, algorithm="random", budget=6,
                              seeds=[0, 1], steps=3, validate=(2, 2), select_scorer=str(second_dir))
    selection = result.selection
    assert selection.select_scorer == str(second_dir)
    second = Evaluator(dpodiff.backends.as_backend(tiny_pipe), ClipScorer.from_pretrained(str(second_dir)), GenerationSettings(3, 7.5), prompt)
    for f in selection.finalists:
        again = second.score([(f.prompt, f.negative_prompt)], [0, 1, 2, 3])[0]
        assert f.second_loss == pytest.approx(again.loss, abs=1e-5)
