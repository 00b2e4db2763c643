"""The power of validated selection as coded (`dpodiff.selection.replay`), by simulation.

A shortlist of K = 4 candidates and the original are "rendered" on validation seeds: each seed's loss is a
shared seed effect plus, for a candidate, its true improvement and independent noise, so the per-seed
paired differences have standard deviation 1 and a candidate's effect is counted in those units (the
measure the paired t-test sees). For each design (fixed V = 4, fixed V = 8, adaptive looks at 4 and 8
seeds) and each effect size, it prints the chance that the rule picks the truly better candidate, picks a
candidate no better than the original, or keeps the original, and the images the validation renders on
average (the original's included). A second table has two better candidates (effects d and d/2) and
compares the two ways of ranking those that pass: by mean improvement and by the interval's low end.

    .venv/bin/python benchmarks/selection_power.py            # ~1.5 min on one core
    .venv/bin/python benchmarks/selection_power.py --trials 20000
"""

from __future__ import annotations

import argparse

import numpy as np

from dpodiff.selection import Finalist, replay

DESIGNS = {"fixed V=4": (4,), "fixed V=8": (8,), "adaptive 4+4": (4, 8)}
EFFECTS = (0.0, 0.5, 1.0, 2.0)
K = 4


def trial(rng: np.random.Generator, effects: list[float], looks: tuple[int, ...], rank: str) -> tuple[int, int]:
    """(history index of the winner, validation images rendered) for one simulated shortlist."""
    n = looks[-1]
    seed_effect = rng.normal(0.0, 3.0, n)  # shared by every prompt on a seed: the paired test removes it
    original = Finalist(0, "original", "", 0.0, list(seed_effect))
    finalists = [original] + [Finalist(i + 1, f"c{i + 1}", "", 0.0, list(seed_effect - effect + rng.normal(0.0, 1.0, n)))
                              for i, effect in enumerate(effects)]
    selection = replay(finalists, 1, looks, rank)
    return selection.winner, selection.images


def rates(effects: list[float], looks: tuple[int, ...], trials: int, rank: str = "mean", seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    best = 1 + int(np.argmax(effects))
    winners, images = zip(*(trial(rng, effects, looks, rank) for _ in range(trials)))
    winners = np.asarray(winners)
    better = {i + 1 for i, e in enumerate(effects) if e > 0}
    return {
        "best": float(np.mean(winners == best)),
        "better": float(np.mean([w in better for w in winners])),
        "no_better": float(np.mean([w != 0 and w not in better for w in winners])),
        "kept": float(np.mean(winners == 0)),
        "images": float(np.mean(images)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=2000)
    args = parser.parse_args()

    print(f"one candidate better by d (in SDs of the per-seed differences), {K - 1} no better; K = {K}, {args.trials} trials\n")
    print("| design | d | picks the better one | picks a no-better one | keeps the original | images |")
    print("|---|---|---|---|---|---|")
    for name, looks in DESIGNS.items():
        for d in EFFECTS:
            r = rates([d] + [0.0] * (K - 1), looks, args.trials)
            better = f"{r['better']:.1%}" if d > 0 else "-"
            print(f"| {name} | {d:g} | {better} | {r['no_better']:.1%} | {r['kept']:.1%} | {r['images']:.1f} |")

    print(f"\ntwo better candidates (d and d/2), {K - 2} no better: which one the ranking of the passing ones picks\n")
    print("| design | d | rank | picks the d one | picks the d/2 one | keeps the original |")
    print("|---|---|---|---|---|---|")
    for name, looks in DESIGNS.items():
        for d in (1.0, 2.0):
            for rank in ("mean", "lower"):
                r = rates([d, d / 2] + [0.0] * (K - 2), looks, args.trials, rank)
                print(f"| {name} | {d:g} | {rank} | {r['best']:.1%} | {r['better'] - r['best']:.1%} | {r['kept']:.1%} |")


if __name__ == "__main__":
    main()
