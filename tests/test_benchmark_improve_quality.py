"""benchmarks/improve_quality.py's statistics: pass rates, repairs, breaks, the best reachable, bootstrap intervals."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from improve_quality import Run, analyse, bar_chart, bootstrap  # noqa: E402


def runs():
    # 4 prompts x 2 seeds. Originals pass 3 of 8 images (p0 seed 0, p1 both).
    before = {"p0": [True, False], "p1": [True, True], "p2": [False, False], "p3": [False, False]}
    random_after = {"p0": [True, False], "p1": [False, True], "p2": [True, False], "p3": [False, False]}
    hybrid_after = {"p0": [True, True], "p1": [True, True], "p2": [False, False], "p3": [False, True]}
    out = []
    for algorithm, after in (("random", random_after), ("hybrid", hybrid_after)):
        for p in before:
            out.append(Run(p, algorithm, before[p], after[p], 0.5, 0.4 if algorithm == "random" else 0.3))
    return out


def test_pass_rates_repairs_breaks_and_the_best_reachable():
    rows, prompts = analyse(runs(), "improve")
    assert prompts == ["p0", "p1", "p2", "p3"]
    table = {name: (rate, repaired, broken, loss) for name, _, rate, repaired, broken, loss in rows}
    assert table["original prompt"][0][0] == pytest.approx(3 / 8)
    rate, repaired, broken, loss = table["random"]
    assert rate[0] == pytest.approx(3 / 8) and repaired[0] == pytest.approx(1 / 5) and broken[0] == pytest.approx(1 / 3) and loss == pytest.approx(0.4)
    rate, repaired, broken, loss = table["hybrid"]
    assert rate[0] == pytest.approx(5 / 8) and repaired[0] == pytest.approx(2 / 5) and broken[0] == 0 and loss == pytest.approx(0.3)
    rate, repaired, _, _ = table["best reachable (any algorithm's best)"]
    assert rate[0] == pytest.approx(6 / 8) and repaired[0] == pytest.approx(3 / 5)  # p2 seed 0 (random), p0 and p3 seed 1 (hybrid)
    for name, (ci, *_rest) in table.items():
        assert ci[1] <= ci[0] <= ci[2], name


def test_the_headroom_counts_every_candidate_scored_when_each_was_judged():
    judged = runs()
    for r in judged:
        r.any_pass = [True, r.prompt != "p3"]  # some candidate passed for every image but p3's second seed
    rows, _ = analyse(judged, "improve")
    table = {name: (rate, repaired) for name, _, rate, repaired, *_rest in rows}
    rate, repaired = table["best reachable (any candidate scored)"]
    assert rate[0] == pytest.approx(7 / 8) and repaired[0] == pytest.approx(4 / 5)


def test_bootstrap_interval_is_deterministic_and_brackets_the_value():
    prompts = [f"p{i}" for i in range(30)]
    value = {p: float(i % 3 == 0) for i, p in enumerate(prompts)}
    mean = lambda ps: sum(value[p] for p in ps) / len(ps)  # noqa: E731
    a, b = bootstrap(prompts, mean), bootstrap(prompts, mean)
    assert a == b and a[0] == pytest.approx(1 / 3) and a[1] < a[0] < a[2] and a[2] - a[1] < 0.5


def test_bar_chart_is_written(tmp_path):
    rows, _ = analyse(runs(), "improve")
    bar_chart(rows, "improve", tmp_path / "chart.png")
    from PIL import Image

    assert Image.open(tmp_path / "chart.png").size[0] > 400
