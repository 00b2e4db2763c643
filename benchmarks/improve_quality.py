"""The headline benchmark: does improve make the judge pass, and does attack make it fail? (shapes world)

Runs `dpodiff bench` on a prompt set (resumable: rerun the same command to continue or to add algorithms),
then reads every run's result.json for the judge's verdict on each seed's original and best image, and
prints per algorithm, over the (prompt, seed) images:
  improve: pass rate before (original prompt) and after (best candidate), the share of failing images
           repaired and of passing images broken, the mean loss before and after; and "best reachable":
           an image counts as passing when the best candidate of ANY algorithm passes (the headroom);
  attack:  pass rate before and after and the share of passing images the attack breaks.
Every share has a bootstrap 95% interval (prompts resampled with replacement, 2000 times). A bar chart
of the pass rates is written as PNG.

    .venv/bin/python benchmarks/improve_quality.py                       # the paper's budget: 40 candidates, 2 seeds
    .venv/bin/python benchmarks/improve_quality.py --task attack
    .venv/bin/python benchmarks/improve_quality.py --analyse-only        # tables and chart from the runs so far
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    prompt: str
    algorithm: str
    before: list[bool]  # the judge's verdict per seed: original image
    after: list[bool]  # best candidate's image
    baseline_loss: float
    best_loss: float
    any_pass: list[bool] | None = None  # per seed: some scored candidate's image passes (None: runs without per-candidate verdicts)


def chosen_prompts(path: Path, stride: int) -> list[str]:
    """The prompts of the file, every `stride`-th one from the first (the file interleaves no kinds, so a stride
    keeps every kind: two shapes, rare synonyms, backgrounds, sizes)."""
    from dpodiff.bench.prompts import read_prompts

    return read_prompts(path).prompts[::stride]


def run_bench(args, prompts: list[str]) -> None:
    listed = args.out / "prompts.txt"
    listed.parent.mkdir(parents=True, exist_ok=True)
    listed.write_text("\n".join(prompts) + "\n")
    command = [sys.executable, "-m", "dpodiff.cli", "bench", str(listed), "--task", args.task, "--algos", args.algos,
               "--budget", str(args.budget), "--seeds", str(args.seeds), "--out", str(args.out)] + args.bench_args
    print("$", " ".join(command[2:]), file=sys.stderr)
    code = subprocess.run(command).returncode
    if code not in (0, 1):  # 1: some runs failed; they are reported and left out
        sys.exit(code)


def read_runs(out: Path, task: str) -> list[Run]:
    with sqlite3.connect(out / "results.sqlite") as conn:
        rows = conn.execute("SELECT prompt, algorithm, baseline_loss, best_loss, run_dir FROM runs WHERE task = ? AND status = 'done'",
                            (task,)).fetchall()
    runs = []
    for prompt, algorithm, baseline, best, run_dir in rows:
        result = json.loads((out / run_dir / "result.json").read_text())
        judge = result.get("judge") or {}
        if judge.get("original") and judge.get("best"):
            judged = [e.get("judged") for e in result["history"]]
            any_pass = [any(j[s] for j in judged) for s in range(len(judge["best"]))] if all(judged) else None
            runs.append(Run(prompt, algorithm, [v["pass"] for v in judge["original"]], [v["pass"] for v in judge["best"]], baseline, best, any_pass))
    return runs


def bootstrap(prompts: list[str], statistic, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(value, low, high): `statistic(prompts)` and its 95% interval over prompts resampled with replacement."""
    rng = np.random.default_rng(seed)
    value = statistic(prompts)
    draws = [statistic([prompts[i] for i in rng.integers(0, len(prompts), len(prompts))]) for _ in range(n)]
    draws = [d for d in draws if d == d]  # a resample with no failing image has no repair rate
    low, high = np.percentile(draws, [2.5, 97.5]) if draws else (float("nan"), float("nan"))
    return value, float(low), float(high)


def share(pairs: list[tuple[bool, bool]], given, event) -> float:
    """Share of (before, after) image pairs where `event` holds, among those where `given` holds (nan if none)."""
    chosen = [p for p in pairs if given(p)]
    return sum(event(p) for p in chosen) / len(chosen) if chosen else float("nan")


def analyse(runs: list[Run], task: str) -> tuple[list[tuple], list[str]]:
    by = {(r.prompt, r.algorithm): r for r in runs}
    algorithms = sorted({r.algorithm for r in runs}, key=["random", "epo", "gpo", "hybrid"].index)
    prompts = sorted({r.prompt for r in runs if all((r.prompt, a) in by for a in algorithms)})  # prompts every algorithm finished

    def pairs(ps, algorithm):
        return [(b, a) for p in ps for b, a in zip(by[p, algorithm].before, by[p, algorithm].after)]

    rows = []
    first = algorithms[0]
    rows.append(("original prompt", len(prompts), bootstrap(prompts, lambda ps: share(pairs(ps, first), lambda p: True, lambda p: p[0])),
                 None, None, np.mean([by[p, first].baseline_loss for p in prompts])))
    for algorithm in algorithms:
        def stat(event, given):
            return lambda ps: share(pairs(ps, algorithm), given, event)  # noqa: B023

        rows.append((algorithm, len(prompts), bootstrap(prompts, stat(lambda p: p[1], lambda p: True)),
                     bootstrap(prompts, stat(lambda p: p[1], lambda p: not p[0])), bootstrap(prompts, stat(lambda p: not p[1], lambda p: p[0])),
                     np.mean([by[p, algorithm].best_loss for p in prompts])))
    if task == "improve":  # the headroom: every candidate scored, when the runs judged each one; else each algorithm's best
        every = all(by[p, a].any_pass is not None for p in prompts for a in algorithms)

        def passes(p, s):
            return any(by[p, a].any_pass[s] if every else by[p, a].after[s] for a in algorithms)

        def reachable_pairs(ps):
            return [(by[p, first].before[s], passes(p, s)) for p in ps for s in range(len(by[p, first].after))]

        name = "best reachable (any candidate scored)" if every else "best reachable (any algorithm's best)"
        rows.append((name, len(prompts), bootstrap(prompts, lambda ps: share(reachable_pairs(ps), lambda p: True, lambda p: p[1])),
                     bootstrap(prompts, lambda ps: share(reachable_pairs(ps), lambda p: not p[0], lambda p: p[1])), None, None))
    return rows, prompts


def fmt(ci) -> str:
    if ci is None:
        return "-"
    value, low, high = ci
    return "-" if value != value else f"{100 * value:.0f}% [{100 * low:.0f}, {100 * high:.0f}]"


def print_table(rows, task: str, settings: str) -> None:
    print(f"\n{task}, {settings}; judge pass rates over (prompt, seed) images, bootstrap 95% intervals over prompts\n")
    if task == "improve":
        print("| | prompts | judge pass rate | failing images repaired | passing images broken | mean loss |")
    else:
        print("| | prompts | judge pass rate | failing images made to pass | passing images broken (attack success) | mean loss |")
    print("|---|---|---|---|---|---|")
    for name, n, rate, repaired, broken, loss in rows:
        print(f"| {name} | {n} | {fmt(rate)} | {fmt(repaired)} | {fmt(broken)} | {'-' if loss is None else f'{loss:.3f}'} |")


def bar_chart(rows, title: str, path: Path) -> None:
    """Pass rate per row with its interval, drawn with PIL."""
    width, height, left, bottom, top = 120 + 110 * len(rows), 320, 50, 70, 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((left, 10), title, fill="black", font=font)
    plot_h = height - top - bottom

    def y(v):
        return top + plot_h * (1 - v)

    for k in range(0, 101, 25):
        draw.line([left - 4, y(k / 100), width - 10, y(k / 100)], fill=(225, 225, 225))
        draw.text((8, y(k / 100) - 6), f"{k}%", fill="black", font=font)
    colours = [(150, 150, 150), (31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (90, 90, 90)]
    for i, (name, _, (value, low, high), *_rest) in enumerate(rows):
        x0 = left + 20 + i * 110
        draw.rectangle([x0, y(value), x0 + 60, y(0)], fill=colours[i % len(colours)])
        draw.line([x0 + 30, y(low), x0 + 30, y(high)], fill="black", width=2)
        for v in (low, high):
            draw.line([x0 + 22, y(v), x0 + 38, y(v)], fill="black", width=2)
        draw.text((x0 + 8, y(value) - 14), f"{100 * value:.0f}%", fill="black", font=font)
        for j, line in enumerate(name.replace(" (", "\n(").split("\n")):
            draw.text((x0 - 10, height - bottom + 8 + 12 * j), line, fill="black", font=font)
    image.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=Path, default=ROOT / "prompts" / "shapes_hard.txt")
    parser.add_argument("--task", default="improve", choices=["improve", "attack"])
    parser.add_argument("--algos", default="random,epo,gpo,hybrid")
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="bench folder (default runs/improve_quality-TASK)")
    parser.add_argument("--chart", type=Path, default=None, help="PNG (default OUT/pass_rates.png)")
    parser.add_argument("--stride", type=int, default=1, help="every N-th prompt only (2: a half with every kind of prompt)")
    parser.add_argument("--analyse-only", action="store_true")
    parser.add_argument("bench_args", nargs="*", help="more `dpodiff bench` options after --, e.g. -- --steps 25 --guidance 3 --threads 2")
    args = parser.parse_args()
    args.out = args.out or ROOT / "runs" / f"improve_quality-{args.task}"
    prompts = chosen_prompts(args.prompts, args.stride)
    if not args.analyse_only:
        run_bench(args, prompts)
    chosen = set(prompts)
    runs = [r for r in read_runs(args.out, args.task) if r.prompt in chosen]
    if not runs:
        sys.exit(f"no finished runs with judge verdicts in {args.out}")
    rows, prompts = analyse(runs, args.task)
    settings = f"{len(prompts)} prompts of {args.prompts.name}{f' (every {args.stride})' if args.stride > 1 else ''}, budget {args.budget}, {args.seeds} seeds"
    print_table(rows, args.task, settings)
    chart = args.chart or args.out / "pass_rates.png"
    bar_chart(rows, f"{args.task}: judge pass rate ({settings})", chart)
    print(f"\nchart: {chart}")


if __name__ == "__main__":
    main()
