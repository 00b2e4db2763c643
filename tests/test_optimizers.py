import math

import pytest

from dpodiff.optimizers import Evolution, RandomSearch, make_optimizer
from dpodiff.search import run_search


def counting_objective(target):
    """Loss = Hamming distance to `target`; records every call."""
    calls = []

    def objective(candidates):
        calls.extend(candidates)
        return [float(sum(a != b for a, b in zip(c, target))) for c in candidates]

    return objective, calls


@pytest.mark.parametrize("name", ["random", "epo"])
def test_budget_respected_original_first_and_nothing_scored_twice(name):
    sizes = [4, 4, 4, 4, 4]
    objective, calls = counting_objective((3, 1, 2, 0, 3))
    outcome = run_search(make_optimizer(name, sizes, seed=0), (0,) * 5, objective, budget=40)
    assert outcome.evaluated == len(calls) == 40
    assert outcome.stop_reason == "budget"
    assert calls[0] == (0, 0, 0, 0, 0)
    assert len(set(calls)) == len(calls)


@pytest.mark.parametrize("name", ["random", "epo"])
def test_small_space_is_exhausted_not_looped(name):
    objective, calls = counting_objective((1, 2))
    outcome = run_search(make_optimizer(name, [2, 3], seed=0), (0, 0), objective, budget=100)
    assert sorted(calls) == [(a, b) for a in range(2) for b in range(3)]
    assert outcome.stop_reason == "exhausted"


def test_same_search_seed_same_proposals():
    a, calls_a = counting_objective((1, 2, 3))
    b, calls_b = counting_objective((1, 2, 3))
    run_search(Evolution([5, 5, 5], seed=7), (0, 0, 0), a, budget=25)
    run_search(Evolution([5, 5, 5], seed=7), (0, 0, 0), b, budget=25)
    assert calls_a == calls_b
    c, calls_c = counting_objective((1, 2, 3))
    run_search(Evolution([5, 5, 5], seed=8), (0, 0, 0), c, budget=25)
    assert calls_c != calls_a


def test_epo_generations_follow_the_paper_settings():
    epo = Evolution([6] * 8, seed=0)
    first = epo.ask()
    assert len(first) == 20 and len(set(first)) == 20
    for i, c in enumerate(first):
        epo.tell(c, float(i))
    second = epo.ask()
    assert len(second) == 20 and not set(second) & set(first)
    parents = first[:10]
    mutants = second[:10]
    # each mutant differs from some parent in few genes (p=0.1 per gene over 8 genes)
    assert all(min(sum(x != y for x, y in zip(m, p)) for p in parents) <= 3 for m in mutants)


def test_epo_mutates_a_tenth_of_the_genes_and_crosses_parents_uniformly():
    """The paper's operators, by their distributions: a mutation re-draws each gene with probability 0.1 (so
    0.1 * 5/6 of 6-valued genes change, a little more for the one forced change when none did), a uniform
    crossover takes each gene from either parent with probability 1/2; and a second generation's children
    hold at every gene a value of one of two parents."""
    genes = 40
    epo = Evolution([6] * genes, seed=0)
    parent = tuple([0] * genes)
    changed = sum(sum(g != 0 for g in epo.mutate(parent)) for _ in range(500)) / (500 * genes)
    assert 0.075 <= changed <= 0.093, changed  # expected 0.0841; a mutation rate of 0.15 would give 0.125
    ones = tuple([1] * genes)
    from_first = sum(sum(g == 0 for g in epo.crossover(parent, ones)) for _ in range(200)) / (200 * genes)
    assert 0.45 <= from_first <= 0.55, from_first
    epo = Evolution([6] * 8, seed=1)
    first = epo.ask()
    for i, c in enumerate(first):
        epo.tell(c, float(i))
    parents, children = first[:10], epo.ask()[10:]
    assert len(children) == 10
    assert all(any(all(g in (p[i], q[i]) for i, g in enumerate(child)) for p in parents for q in parents if p != q) for child in children)


def test_epo_beats_random_on_a_structured_problem():
    """On a separable problem, selection should find better candidates than uniform sampling does."""
    sizes = [5] * 10
    target = tuple(i % 5 for i in range(10))
    results = {"random": [], "epo": []}
    for seed in range(10):
        for name, opt in (("random", RandomSearch(sizes, seed, sampling="uniform")), ("epo", Evolution(sizes, seed, sampling="uniform"))):
            objective, calls = counting_objective(target)
            run_search(opt, (0,) * 10, objective, budget=120)
            results[name].append(min(sum(a != b for a, b in zip(c, target)) for c in calls))
    assert sum(results["epo"]) < sum(results["random"])


def test_rejected_candidates_cost_nothing_and_are_never_proposed_again():
    sizes = [3, 3, 3]
    objective, calls = counting_objective((2, 2, 2))
    opt = RandomSearch(sizes, seed=0)
    outcome = run_search(opt, (0, 0, 0), objective, budget=10, admissible=lambda c: c[0] != 1)
    assert all(c[0] != 1 for c in calls)
    assert outcome.evaluated == len(calls) == 10
    assert outcome.rejected >= 1
    assert all(math.isinf(opt.told[c]) for c in opt.told if c[0] == 1)


def test_interrupt_keeps_what_was_scored():
    calls = []

    def objective(candidates):
        if len(calls) == 11:
            raise KeyboardInterrupt
        calls.extend(candidates)
        return [0.0] * len(candidates)

    outcome = run_search(RandomSearch([4] * 4, seed=0), (0,) * 4, objective, budget=40)
    assert outcome.stop_reason == "interrupted"
    assert outcome.evaluated == 11 and len(calls) == 11  # the original, then one batch of 10


def test_sparse_sampling_changes_about_two_genes_from_their_defaults():
    """K genes leave their default (gene 0): K geometric with mean 2 (P(K=1) = 1/2, P(K=2) = 1/4, ...), each to a non-default choice."""
    import collections
    import random

    from dpodiff.optimizers.base import SPARSE_MEAN_CHANGES

    opt = RandomSearch([6] * 9 + [1], seed=0)  # the last gene has no choice to make
    rng = random.Random(0)
    counts = collections.Counter(sum(g != 0 for g in opt.sparse(rng)) for _ in range(20000))
    assert min(counts) >= 1 and max(counts) <= 9
    share = {k: counts[k] / 20000 for k in counts}
    assert share[1] == pytest.approx(0.5, abs=0.015) and share[2] == pytest.approx(0.25, abs=0.015)
    assert sum(k * v for k, v in share.items()) == pytest.approx(SPARSE_MEAN_CHANGES, abs=0.05)
    uniform = [sum(g != 0 for g in opt.uniform(rng)) for _ in range(2000)]
    assert sum(uniform) / len(uniform) == pytest.approx(9 * 5 / 6, abs=0.1)  # the paper's: most slots filled


def test_sampling_is_sparse_by_default_and_uniform_reproduces_the_paper():
    import collections

    sparse = RandomSearch([5] * 8, seed=3)
    assert sparse.settings()["sampling"] == "sparse" and Evolution([5] * 8).settings()["init"] == "sparse"
    changed = [sum(g != 0 for g in c) for _ in range(5) for c in sparse.ask()]
    assert min(changed) >= 1 and sum(changed) / len(changed) < 3  # uniform draws change 6.4 of 8 genes on average
    drawn = [c for seed in range(50) for c in RandomSearch([5] * 8, seed=seed, sampling="uniform").ask()]
    values = collections.Counter(g for c in drawn for g in c)
    assert len(drawn) == 500 and all(abs(values[v] / 4000 - 0.2) < 0.02 for v in range(5))  # every gene uniform over its 5 choices
    assert sum(sum(g != 0 for g in c) for c in drawn) / 500 == pytest.approx(8 * 4 / 5, abs=0.15)
    first = Evolution([5] * 8, seed=3, sampling="uniform").ask()
    assert len(set(first)) == 20 and sum(sum(g != 0 for g in c) for c in first) / 20 > 4  # EPO's generation 0 alike
    with pytest.raises(ValueError, match="sparse or uniform"):
        RandomSearch([5], sampling="dense")


def test_sparse_random_search_exhausts_a_small_space():
    objective, calls = counting_objective((1, 1))
    outcome = run_search(RandomSearch([2, 3], seed=0), (0, 0), objective, budget=100)
    assert sorted(calls) == sorted((a, b) for a in range(2) for b in range(3)) and outcome.stop_reason != "budget"
