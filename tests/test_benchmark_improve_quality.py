"""benchmarks/improve_quality.py's statistics on evaluation seeds: the picks, the replay of validated selection,
the best reachable, bootstrap intervals, charts."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from improve_quality import Finalist, Run, analyse, attack_split, bar_chart, bootstrap, line_chart, replay, rules, validated, validated_before  # noqa: E402

# Each run: history index 0 the original, 1 the arg-min of the search seeds (seed luck: no better on new seeds),
# 2 a real improvement (a little worse on the search seeds, better on every validation seed), 3 the judge's favourite.
ORIGINAL_VALIDATION = [0.30, 0.32, 0.31, 0.29]
LUCKY_VALIDATION = [0.31, 0.30, 0.33, 0.29]
REAL_VALIDATION = [0.25, 0.27, 0.26, 0.24]


def run(prompt, algorithm, before, after_lucky, after_real, after_favourite):
    finalists = [Finalist(0, 0.30, ORIGINAL_VALIDATION), Finalist(1, 0.24, LUCKY_VALIDATION), Finalist(2, 0.26, REAL_VALIDATION)]
    return Run(prompt, algorithm, 1, 2, {"original": 0, "argmin": 1, "judge_best": 3}, finalists,
               {0: before, 1: after_lucky, 2: after_real, 3: after_favourite}, {0: 0.3, 1: 0.31, 2: 0.25, 3: 0.28},
               {0: 1, 1: 1, 2: 1, 3: 2 if algorithm == "hybrid" else 0}, {i: prompt for i in range(4)})


def runs():
    # 2 prompts x 2 evaluation seeds; the originals pass 2 of 4 images
    out = []
    for algorithm in ("random", "hybrid"):
        out.append(run("p0", algorithm, [True, False], [False, False], [True, True], [True, True]))
        out.append(run("p1", algorithm, [True, False], [True, False], [True, False], [False, False]))
    return out


def test_validated_replays_selections_rule():
    r = runs()[0]
    # on 2 validation seeds the real candidate's mean over all 4 seeds is best ((0.26 * 2 + 0.52) / 4 < (0.24 * 2 + 0.61) / 4),
    # and its paired gain (0.05, 0.05) has no spread: beyond noise
    assert validated(r, 2, 2) == (2, 6)  # (the pick, the validation images: 3 finalists x 2 seeds)
    assert validated(r, 1, 4) == (0, 8)  # only the lucky one shortlisted: no better on new seeds, the original is kept
    assert validated(r, 2, 4) == (2, 12)
    assert validated(r, 2, (2, 4)) == (2, 12)  # adaptive: both still look better after 2 seeds, so both go on
    assert validated_before(r, 2, 4) == 2


def test_the_rule_before_round_2_had_a_winners_curse():
    # both pass; 1 had lucky search seeds and gains 0.01, 2 gains 0.03 on the validation seeds
    finalists = [Finalist(0, 0.30, [0.30, 0.31, 0.29, 0.30]), Finalist(1, 0.10, [0.29, 0.30, 0.28, 0.29]),
                 Finalist(2, 0.30, [0.27, 0.28, 0.26, 0.27])]
    r = Run("p", "random", 1, 2, {"original": 0}, finalists, {i: [True] for i in range(3)}, {}, {}, {})
    assert validated_before(r, 2, 4) == 1 and validated(r, 2, 4)[0] == 2
    names = [row[0] for row in rules([r], ["p"], 2)]
    assert names[0].startswith("before round 2") and any(n.startswith("adaptive") for n in names)


def test_headline_rows_pick_from_the_same_runs():
    rows, prompts = analyse(runs(), 2, 4)
    assert prompts == ["p0", "p1"]
    table = {name: (rate, repaired, broken, loss) for name, _, rate, repaired, broken, loss in rows}
    assert table["original prompt"][0][0] == pytest.approx(2 / 4)
    rate, repaired, broken, loss = table["random: lowest search loss"]
    assert rate[0] == pytest.approx(1 / 4) and repaired[0] == 0 and broken[0] == pytest.approx(1 / 2) and loss == pytest.approx(0.31)
    rate, repaired, broken, loss = table["hybrid: validated 2,4"]
    assert rate[0] == pytest.approx(3 / 4) and repaired[0] == pytest.approx(1 / 2) and broken[0] == 0 and loss == pytest.approx(0.25)
    rate, *_ = table["best reachable (judge's favourite on the search seeds)"]
    assert rate[0] == pytest.approx(2 / 4)  # hybrid's favourite (2 search passes): p0 both, p1 none
    for name, (ci, *_rest) in table.items():
        assert ci[1] <= ci[0] <= ci[2], name


def test_replay_covers_every_k_and_v_the_runs_allow():
    rows = replay(runs(), ["p0", "p1"])
    assert [(k, v, images) for k, v, images, *_ in rows] == [("1", "2", 4), ("1", "4", 8), ("2", "2", 6), ("2", "4", 12)]
    by = {(int(k), int(v)): (rate, broken, kept) for k, v, _, rate, _, broken, kept in rows}
    assert by[1, 4][2] == 1.0 and by[1, 4][0][0] == pytest.approx(2 / 4)  # the original kept everywhere
    assert by[2, 4][2] == 0.0 and by[2, 4][0][0] == pytest.approx(3 / 4) and by[2, 4][1][0] == 0


def test_bootstrap_interval_is_deterministic_and_brackets_the_value():
    prompts = [f"p{i}" for i in range(30)]
    value = {p: float(i % 3 == 0) for i, p in enumerate(prompts)}
    mean = lambda ps: sum(value[p] for p in ps) / len(ps)  # noqa: E731
    a, b = bootstrap(prompts, mean), bootstrap(prompts, mean)
    assert a == b and a[0] == pytest.approx(1 / 3) and a[1] < a[0] < a[2] and a[2] - a[1] < 0.5


def test_charts_are_written(tmp_path):
    from PIL import Image

    rows, _ = analyse(runs(), 2, 4)
    bar_chart(rows, "improve", tmp_path / "chart.png")
    assert Image.open(tmp_path / "chart.png").size[0] > 400
    line_chart({"random": [(10, (0.5, 0.4, 0.6)), (40, (0.6, 0.5, 0.7))]}, 0.55, "sweep", tmp_path / "sweep.png")
    assert Image.open(tmp_path / "sweep.png").size == (640, 380)


def test_attack_split_counts_broken_images_by_what_the_grammar_reads():
    def attack(prompt, rewording, after):
        finalists = [Finalist(0, 0.30, ORIGINAL_VALIDATION), Finalist(1, 0.6, [0.6, 0.62, 0.61, 0.6])]
        return Run(prompt, "hybrid", -1, 2, {"original": 0, "argmin": 1, "judge_best": 0}, finalists,
                   {0: [True, True], 1: after}, {0: 0.3, 1: 0.6}, {0: 2, 1: 1}, {0: prompt, 1: rewording})

    runs = [attack("a red circle", "a crimson disc", [False, True]),  # the same scene: a real attack, 1 image broken
            attack("a blue square", "a bluish square", [False, False]),  # the grammar cannot read it: 2 broken, unverified
            attack("a green triangle", "a green circle", [False, True])]  # another scene: 1 broken, no attack
    [(algorithm, verified, changed, unparsed, counts)] = attack_split(runs, ["a blue square", "a green triangle", "a red circle"], 1, 4)
    assert algorithm == "hybrid" and verified[0] == pytest.approx(1 / 6) and changed[0] == pytest.approx(1 / 6) and unparsed[0] == pytest.approx(2 / 6)
    assert counts == {"verified": 1, "changed": 1, "unparsed": 1, "original": 0}
