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
from dpodiff.selection import Finalist, NonFiniteLoss, PairedTest, decide, paired_improvement, rank_key, replay, select, shortlist_of


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
    for bad in (math.inf, -math.inf, math.nan):  # an infinite spread is no zero spread
        with pytest.raises(ValueError, match="finite"):
            paired_improvement([0.3, bad, 0.3], [0.4, 0.4, 0.4])


def finalist(index, losses, search_loss=0.3):
    return Finalist(index, f"p{index}", "", search_loss, list(losses))


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
    # ...but not as one of three tries; then the one closest to passing is reported (not the best mean: lucky), its p adjusted (times 3)
    chosen = decide([original, lucky, borderline, finalist(4, [0.31, 0.30, 0.30, 0.31])], 1)
    assert chosen.kept_original and chosen.winner == original.index and chosen.challenger == borderline.index
    assert chosen.interval[0] < 0 < chosen.interval[1]
    assert chosen.p_value == pytest.approx(3 * p_alone)
    assert "closest to passing" in chosen.summary() and f"p = {3 * p_alone:.3f}" in chosen.summary()
    nothing = decide([original], 1)
    assert nothing.challenger is None and nothing.kept_original and nothing.winner == original.index


def test_fresh_seeds_never_reuse_a_seed():
    assert fresh_seeds([0, 1], 4) == [2, 3, 4, 5]
    assert fresh_seeds([3, 7], 3) == [8, 9, 10]
    assert fresh_seeds([0, 1, 1001], 3, start=1000) == [1000, 1002, 1003]


def test_parse_validate():
    assert parse_validate("4,2") == (4, 2) and parse_validate([1, 3]) == (1, 3) and parse_validate(None) is None
    assert parse_validate("4,4,8") == (4, 4, 8) and parse_validate("2, 2,4,6") == (2, 2, 4, 6)
    for bad in ("4", "a,b", "0,4", "4,1", "4,4,4", "4,8,4", "4,1,8"):
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
    # the finalist's losses are the evaluator's on the validation seeds (alone in a batch: float noise of a
    # different batch only), and its loss their mean
    again = shapes.score([pairs[2]], [2, 3, 4, 5])[0]
    finalist = selection.finalist(2)
    assert finalist.losses == pytest.approx(again.losses, abs=1e-4)
    assert finalist.loss == pytest.approx(np.mean(finalist.losses))
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
    def finalist(index, improvement, second):
        return Finalist(index, "p", "", 0.3, [0.3, 0.3], None, second)

    tests = {1: PairedTest(0.03, [0.01, 0.05], 0.001), 2: PairedTest(0.02, [0.015, 0.025], 0.001), 3: PairedTest(0.01, [0.005, 0.015], 0.001)}
    a, b, c = finalist(1, 0.03, 0.9), finalist(2, 0.02, 0.1), finalist(3, 0.01, 0.2)
    # ranks: a (0, 2) -> 1.0; b (1, 0) -> 0.5; c (2, 1) -> 1.5: the second scorer's favourite b wins
    assert min([a, b, c], key=rank_key([a, b, c], tests, 1)) is b
    # without a second scorer, the improvement on the validation seeds decides: its mean, or its interval's low end
    plain = [finalist(1, 0.03, None), finalist(2, 0.02, None)]
    assert min(plain, key=rank_key(plain, tests, 1, "mean")) is plain[0]
    assert min(plain, key=rank_key(plain, tests, 1, "lower")) is plain[1]
    # attack: the second scorer's highest loss ranks first
    assert min([a, b], key=rank_key([a, b], {1: tests[2], 2: tests[2]}, -1)) is a


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
    for f in selection.finalists:  # the validation seeds only: the search seeds chose the shortlist
        again = second.score([(f.prompt, f.negative_prompt)], [2, 3])[0]
        assert f.second_loss == pytest.approx(again.loss, abs=1e-5)


def evaluation(index, losses):
    return Evaluation(index, [index], f"p{index}", f"n{index}", float(np.mean(losses)), list(losses), 0.0)


def test_the_shortlist_follows_the_tasks_sign_and_leaves_out_non_finite_losses():
    history = [evaluation(0, [0.5, 0.5]), evaluation(1, [0.2, 0.2]), evaluation(2, [0.9, 0.8]), evaluation(3, [0.4, 0.4]),
               evaluation(4, [0.1, math.nan]), evaluation(5, [math.inf, 0.95])]
    improve, excluded = shortlist_of(history, 1, 2)
    assert [e.index for e in improve] == [0, 1, 3]  # the lowest losses: improve minimises
    attack, _ = shortlist_of(history, -1, 2)
    assert [e.index for e in attack] == [0, 2, 3]  # the highest: attack maximises
    assert [x["index"] for x in excluded] == [4, 5] and "nan on search seed 2" in excluded[0]["reason"]
    # where a NaN stood in the list does not change the shortlist
    shuffled = [history[0]] + history[:0:-1]
    assert [e.index for e in shortlist_of(shuffled, 1, 2)[0]] == [0, 1, 3]
    with pytest.raises(NonFiniteLoss, match="original prompt's loss inf on search seed 1"):
        shortlist_of([evaluation(0, [math.inf, 0.3])] + history[1:], 1, 2)


def test_the_winner_is_chosen_on_the_validation_seeds_alone():
    # A had lucky search seeds (0.20) and gains 0.0105 on the validation seeds; B gains 0.0295 there: B wins
    original = finalist(0, [0.300, 0.310, 0.290, 0.305], search_loss=0.30)
    a = finalist(1, [0.290, 0.299, 0.279, 0.2945], search_loss=0.20)
    b = finalist(2, [0.271, 0.279, 0.262, 0.275], search_loss=0.29)
    chosen = decide([original, a, b], 1)
    assert chosen.p_value < 0.05 and not chosen.kept_original
    assert chosen.winner == b.index and chosen.improvement == pytest.approx(0.0295)
    # ranked by the interval's low end, a steadier but smaller gain can win
    steady = finalist(3, [0.270, 0.280, 0.260, 0.275])  # 0.03 on every seed
    jumpy = finalist(4, [0.255, 0.285, 0.245, 0.270])  # 0.0375 on average, spread out
    assert decide([original, steady, jumpy], 1, rank="mean").winner == jumpy.index
    assert decide([original, steady, jumpy], 1, rank="lower").winner == steady.index


def test_non_finite_losses_exclude_a_candidate_and_stop_on_the_original():
    original = finalist(0, [0.30, 0.31, 0.29, 0.30])
    worse = finalist(1, [0.35, 0.36, 0.34, 0.35])
    # an original with +inf on one seed would make every candidate look better beyond doubt
    with pytest.raises(NonFiniteLoss, match="original prompt's loss inf on validation seed 2"):
        decide([finalist(0, [0.30, math.inf, 0.29, 0.30]), worse], 1)
    for bad in (math.inf, -math.inf, math.nan):
        broken = finalist(2, [0.20, bad, 0.20, 0.20])  # far better on every finite seed
        chosen = decide([original, worse, broken], 1)
        assert chosen.winner == 0 and chosen.kept_original and chosen.challenger == worse.index
        assert chosen.finalist(2).excluded.startswith(f"loss {bad} on validation seed 2")
        assert chosen.finalist(1).excluded is None
    alone = decide([original, finalist(2, [0.20, math.nan, 0.20, 0.20])], 1)
    assert alone.kept_original and alone.challenger is None and "no candidate to compare" in alone.summary()


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_the_interval_agrees_with_the_test(k):
    """The reported interval's low end is above zero exactly when the challenger passed the Bonferroni test."""
    rng = np.random.default_rng(k)
    for _ in range(200):
        o = rng.normal(0.3, 0.02, 4)
        finalists = [finalist(0, o)] + [finalist(i + 1, o - rng.normal(0.01, 0.01, 4)) for i in range(k)]
        chosen = decide(finalists, 1)
        assert (chosen.interval[0] > 0) == (not chosen.kept_original)
        assert chosen.level == pytest.approx(1 - 2 * 0.05 / k)


def simulate(rng, effects, looks, sign=1):
    n = looks[-1]
    o = rng.normal(0.3, 0.05, n)
    finalists = [finalist(0, o)] + [finalist(i + 1, o - sign * (e * 0.01) + rng.normal(0, 0.01, n)) for i, e in enumerate(effects)]
    return replay(finalists, sign, looks)


@pytest.mark.parametrize("sign", [1, -1])
def test_adaptive_validation_keeps_the_family_wise_error_and_saves_images(sign):
    rng = np.random.default_rng(0)
    null, fixed = [], []
    for _ in range(1000):  # the same stored losses, validated in two looks and in one
        state = rng.bit_generator.state
        null.append(simulate(rng, [0, 0, 0, 0], (4, 8), sign))
        rng.bit_generator.state = state
        fixed.append(simulate(rng, [0, 0, 0, 0], (8,), sign))
    # stopping for futility only takes choices away from the fixed design at the final look, never adds one
    assert all(a.kept_original or not b.kept_original for a, b in zip(null, fixed))
    false_picks = sum(not s.kept_original for s in fixed) / len(fixed)
    assert false_picks <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / len(fixed))  # Bonferroni at 5%, within simulation noise
    assert sum(not s.kept_original for s in null) <= sum(not s.kept_original for s in fixed)
    # futility: about half the null candidates stop after 4 seeds, so far fewer than 5 x 8 images are rendered
    mean_images = np.mean([s.images for s in null])
    assert 20 < mean_images < 32
    stopped = [f for s in null for f in s.finalists[1:] if f.excluded]
    assert all(len(f.losses) == 4 and f.excluded.startswith("stopped after 4 validation seeds") for f in stopped)
    # a truly better candidate (1 SD) is found more often with up to 8 seeds than with 4
    better = sum(simulate(rng, [1, 0, 0, 0], (4, 8), sign).winner == 1 for _ in range(400))
    fixed = sum(simulate(rng, [1, 0, 0, 0], (4,), sign).winner == 1 for _ in range(400))
    assert better > fixed + 40


def test_adaptive_validation_renders_in_rounds(tiny_pipe, tiny_scorer):
    from dpodiff.backends import GenerationSettings, as_backend

    prompt = "a red circle above a blue square"
    evaluator = Evaluator(as_backend(tiny_pipe), tiny_scorer, GenerationSettings(3, 7.5), prompt)
    pairs = [(prompt, ""), (prompt, "blue"), (prompt, "green"), ("a blue square", ""), (prompt, "blurry")]
    history = history_of(evaluator, pairs, [0, 1])
    done = []
    selection, scored = select(history, 1, evaluator, 4, [2, 3, 4, 5], looks=(2, 4), on_finalist=lambda d, t: done.append((d, t)))
    assert selection.looks == [2, 4] and selection.seeds == [2, 3, 4, 5]
    lengths = {f.index: len(f.losses) for f in selection.finalists}
    assert lengths[0] == 4 and set(lengths.values()) <= {2, 4}
    assert selection.images == sum(lengths.values()) == sum(len(s.losses) for s in scored)
    again = sum(n == 4 for i, n in lengths.items() if i)  # the candidates of the second round, and the original with them
    assert done[-1][0] == done[-1][1] == len(pairs) + (again + 1 if again else 0)
    for f, s in zip(selection.finalists, scored):  # each finalist's images and losses, whatever round made them
        assert s.seeds == [2, 3, 4, 5][: len(f.losses)] and s.losses == f.losses and len(s.pixels) == len(f.losses)
        if len(f.losses) == 2:
            assert f.excluded.startswith("stopped after 2 validation seeds")
    # replaying the stored losses gives the same choice
    stored = [Finalist(f.index, f.prompt, f.negative_prompt, f.search_loss,
                       evaluator.score([(f.prompt, f.negative_prompt)], [2, 3, 4, 5])[0].losses) for f in selection.finalists]
    again = replay(stored, 1, (2, 4))
    assert again.winner == selection.winner and [len(f.losses) for f in again.finalists] == list(lengths.values())


def test_an_original_with_a_non_finite_loss_stops_the_run_before_the_budget_is_spent(tiny_pipe, tiny_scorer_dir):
    from dpodiff.objectives.clip_loss import ClipScorer
    from dpodiff.spaces import SearchSpace, Slot

    broken = ClipScorer.from_pretrained(str(tiny_scorer_dir))
    broken.model.visual_projection.weight.data.fill_(math.nan)  # a scorer whose image tower gives NaN
    prompt = "a red circle above a blue square"
    space = SearchSpace(prompt, negative=[Slot("red", ["blue", "green"])])
    scored = []
    with pytest.raises(NonFiniteLoss, match="original prompt's loss nan on search seed 1 of 2.*--dtype float32"):
        dpodiff.optimize(prompt, pipeline=tiny_pipe, scorer=broken, task="improve", space=space, algorithm="random", budget=3,
                         seeds=[0, 1], steps=2, on_evaluation=lambda e, r: scored.append(e))
    assert scored == []  # stopped at the original: no candidate was scored
