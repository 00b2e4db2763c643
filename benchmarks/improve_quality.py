"""The headline benchmark: does improve make the judge pass, and does attack make it fail? (shapes world)

Every number is measured on evaluation seeds that neither the search nor the validation saw
(`dpodiff bench --eval-seeds`), so no pick is judged on the seeds it was chosen on.

Runs `dpodiff bench` on a prompt set (resumable: rerun the same command to continue or to add algorithms),
then reads every run's result.json and prints, over the (prompt, evaluation seed) images:
  - the pass rate of the original prompt and, per algorithm, of two picks from the same runs: the plain
    arg-min of the search seeds (what --no-validate and the paper choose) and validated selection with the
    default K,V (replayed from the shortlist's stored losses, see below); with the share of failing images
    repaired and of passing images broken, and the mean loss on the evaluation seeds;
  - "best reachable": per prompt, the candidate the judge liked best on the search seeds (over every
    algorithm), judged again on the evaluation seeds: the headroom that survives fresh seeds;
  - validated selection replayed for every shortlist size K and validation seed count V up to those the
    bench ran with (every finalist is judged on the evaluation seeds, so any K' <= K, V' <= V replays
    exactly: the same seeds a run with --validate K',V' would use), with its cost in images.
For attack the first table splits the passing images broken by what the grammar reads in the chosen
rewording: the same scene (a verified attack, the headline), another scene (a changed meaning), or
nothing it can read.
Every share has a bootstrap 95% interval (prompts resampled with replacement, 2000 times). A bar chart of
the headline pass rates is written as PNG.

--sweep 10,20,80 runs the same bench at other budgets too (in OUT/budget-B; the main budget's runs are
reused) and draws the pass rate on evaluation seeds against the budget (the over-optimisation curve).

    .venv/bin/python benchmarks/improve_quality.py --stride 4 -- --batch-size 16
    .venv/bin/python benchmarks/improve_quality.py --stride 4 --out runs/iq-positive -- --positive --batch-size 16
    .venv/bin/python benchmarks/improve_quality.py --stride 4 --algos random,hybrid --sweep 10,20,80 -- --batch-size 16
    .venv/bin/python benchmarks/improve_quality.py --analyse-only        # tables and charts from the runs so far
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

from dpodiff.defaults import DEFAULT_VALIDATE
from dpodiff import selection
from dpodiff.registry import OPTIMIZERS

ROOT = Path(__file__).resolve().parent.parent
ORDER = list(OPTIMIZERS)


@dataclass
class Finalist:
    index: int
    search_loss: float  # mean over the search seeds
    losses: list[float]  # per validation seed


@dataclass
class Run:
    """What one bench run says about the picks it could make, each judged on the evaluation seeds."""

    prompt: str
    algorithm: str
    sign: int
    search_seeds: int
    roles: dict[str, int]  # original, argmin, judge_best -> history index
    finalists: list[Finalist]  # the original first, then the shortlist by search loss
    passed: dict[int, list[bool]]  # history index -> the judge's verdict per evaluation seed
    eval_loss: dict[int, float]  # history index -> mean loss on the evaluation seeds
    search_passes: dict[int, int]  # history index -> images the judge passed on the search seeds
    texts: dict[int, str]  # history index -> its prompt (attack: the rewording)


def validated(run: Run, k: int, looks: int | tuple[int, ...], rank: str = "mean") -> tuple[int, int]:
    """(history index, validation images) of validated selection with shortlist K and V validation seeds, or
    adaptive `looks` (selection.py's rule, replayed on the stored losses: the same seeds a run would render)."""
    looks = (looks,) if isinstance(looks, int) else looks
    finalists = [selection.Finalist(f.index, "", "", f.search_loss, f.losses) for f in run.finalists[:k + 1]]
    chosen = selection.replay(finalists, run.sign, looks, rank)
    return chosen.winner, chosen.images


def validated_before(run: Run, k: int, v: int) -> int:
    """The rule before round 2: the same test, but the winner among those passing had the best mean loss over
    all its seeds, the search seeds that chose it included (a winner's curse)."""
    n = run.search_seeds
    original, *shortlist = run.finalists[:k + 1]
    passing = [f for f in shortlist if selection.paired_improvement(original.losses[:v], f.losses[:v], run.sign)[2] < (1 - selection.LEVEL) / k]
    return min(passing, key=lambda f: (run.sign * (f.search_loss * n + sum(f.losses[:v])) / (n + v), f.index), default=original).index


def chosen_prompts(path: Path, stride: int) -> list[str]:
    """The prompts of the file, every `stride`-th one from the first (the file lists its kinds in blocks, so a
    stride keeps every kind: two shapes, rare synonyms, backgrounds, sizes)."""
    from dpodiff.bench.prompts import read_prompts

    return read_prompts(path).prompts[::stride]


def run_bench(args, prompts: list[str], out: Path, budget: int) -> None:
    listed = out / "prompts.txt"
    listed.parent.mkdir(parents=True, exist_ok=True)
    listed.write_text("\n".join(prompts) + "\n")
    command = [sys.executable, "-m", "dpodiff.cli", "bench", str(listed), "--task", args.task, "--algos", args.algos,
               "--budget", str(budget), "--seeds", str(args.seeds), "--eval-seeds", str(args.eval_seeds),
               "--validate", args.validate, "--out", str(out)] + args.bench_args
    print("$", " ".join(command[2:]), file=sys.stderr)
    code = subprocess.run(command).returncode
    if code not in (0, 1):  # 1: some runs failed; they are reported and left out
        sys.exit(code)


def read_runs(out: Path, task: str) -> list[Run]:
    with sqlite3.connect(out / "results.sqlite") as conn:
        rows = conn.execute("SELECT prompt, algorithm, run_dir FROM runs WHERE task = ? AND status = 'done'", (task,)).fetchall()
    runs = []
    for prompt, algorithm, run_dir in rows:
        result = json.loads((out / run_dir / "result.json").read_text())
        held_out, selection = result.get("held_out"), result.get("selection")
        if not held_out or not selection or any(c["judged"] is None for c in held_out["candidates"]):
            continue  # a run without evaluation seeds, validation or the judge's verdicts
        roles = {role: c["index"] for c in held_out["candidates"] for role in c["roles"]}
        runs.append(Run(
            prompt, algorithm, -1 if result["task"] == "attack" else 1, len(result["seeds"]), roles,
            [Finalist(f["index"], f["search_loss"], f["losses"]) for f in selection["finalists"]],
            {c["index"]: c["judged"] for c in held_out["candidates"]},
            {c["index"]: float(np.mean(c["losses"])) for c in held_out["candidates"]},
            {e["index"]: sum(e["judged"]) for e in result["history"] if e.get("judged") is not None},
            {e["index"]: e["prompt"] for e in result["history"]},
        ))
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


def pick_row(name: str, prompts: list[str], pick) -> tuple:
    """(name, prompts, pass rate, repaired, broken, mean eval loss) for `pick(prompt) -> (run, history index)`."""
    def pairs(ps):
        out = []
        for p in ps:
            run, index = pick(p)
            out += list(zip(run.passed[run.roles["original"]], run.passed[index]))
        return out

    def rate(event, given):
        return bootstrap(prompts, lambda ps: share(pairs(ps), given, event))

    losses = [run.eval_loss[index] for run, index in map(pick, prompts)]
    return (name, len(prompts), rate(lambda p: p[1], lambda p: True), rate(lambda p: p[1], lambda p: not p[0]),
            rate(lambda p: not p[1], lambda p: p[0]), float(np.mean(losses)))


def analyse(runs: list[Run], k: int, v: int) -> tuple[list[tuple], list[str]]:
    """The headline rows: the original, each algorithm's arg-min and validated pick, and the best reachable."""
    by = {(r.prompt, r.algorithm): r for r in runs}
    algorithms = sorted({r.algorithm for r in runs}, key=ORDER.index)
    prompts = sorted({r.prompt for r in runs if all((r.prompt, a) in by for a in algorithms)})  # prompts every algorithm finished
    first = algorithms[0]
    rows = [pick_row("original prompt", prompts, lambda p: (by[p, first], by[p, first].roles["original"]))]
    for a in algorithms:
        rows.append(pick_row(f"{a}: lowest search loss", prompts, lambda p, a=a: (by[p, a], by[p, a].roles["argmin"])))
        rows.append(pick_row(f"{a}: validated {k},{v}", prompts, lambda p, a=a: (by[p, a], validated(by[p, a], k, v)[0])))

    def favourite(p):  # the judge's favourite on the search seeds over every algorithm (ties: the earlier algorithm)
        run = max((by[p, a] for a in algorithms), key=lambda r: r.search_passes.get(r.roles["judge_best"], 0))
        return run, run.roles["judge_best"]

    rows.append(pick_row("best reachable (judge's favourite on the search seeds)", prompts, favourite))
    return rows, prompts


MEANINGS = ("verified", "changed", "unparsed")


def attack_split(runs: list[Run], prompts: list[str], k: int, v: int) -> list[tuple]:
    """Attack: each algorithm's validated pick, its passing images broken split by what the shapes world's
    grammar reads in the rewording (dpodiff.shapes.grammar.meaning; read here, so runs made before the
    reader existed are split too): the same scene (a real attack), another scene (a changed meaning, no
    attack), or nothing it can read. Rows (algorithm, broken with a verified rewording, changed, unparsed,
    picks per meaning)."""
    from dpodiff.objectives.judge import same_meaning
    from dpodiff.shapes.grammar import meaning

    by = {(r.prompt, r.algorithm): r for r in runs}
    rows = []
    for a in sorted({r.algorithm for r in runs}, key=ORDER.index):
        picks = {p: validated(by[p, a], k, v)[0] for p in prompts}

        def read(p, picks=picks):
            run = by[p, a]
            return same_meaning(meaning, p, run.texts[picks[p]]) if picks[p] != run.roles["original"] else "original"

        def broken(kind):
            def statistic(ps):
                pairs = [(b, after) for p in ps for b, after in zip(by[p, a].passed[by[p, a].roles["original"]], by[p, a].passed[picks[p]])
                         if read(p) == kind or kind is None]
                passing = sum(b for p in ps for b in by[p, a].passed[by[p, a].roles["original"]])
                return sum(b and not after for b, after in pairs) / passing if passing else float("nan")
            return bootstrap(prompts, statistic)

        counts = {m: sum(read(p) == m for p in prompts) for m in MEANINGS + ("original",)}
        rows.append((a, broken("verified"), broken("changed"), broken("unparsed"), counts))
    return rows


def print_attack_split(rows, k: int, v: int) -> None:
    print(f"\nattack, validated {k},{v}: passing images broken (evaluation seeds), by what the grammar reads in the rewording\n")
    print("| algorithm | broken, same scene (verified attack) | broken, another scene (meaning changed) | broken, unreadable | picks: verified / changed / unreadable / original kept |")
    print("|---|---|---|---|---|")
    for a, verified, changed, unparsed, counts in rows:
        print(f"| {a} | {fmt(verified)} | {fmt(changed)} | {fmt(unparsed)} | "
              f"{counts['verified']} / {counts['changed']} / {counts['unparsed']} / {counts['original']} |")


def replay(runs: list[Run], prompts: list[str]) -> list[tuple]:
    """Validated selection for every K' <= K and V' <= V the runs allow, pooled over algorithms: pass rate and
    broken share on the evaluation seeds, the share of runs that kept the original, and the images it costs."""
    max_k = min(len(r.finalists) - 1 for r in runs)
    max_v = min(len(r.finalists[0].losses) for r in runs)
    rules = {(k, v): (lambda r, k=k, v=v: validated(r, k, v)) for k in (1, 2, 4, 8) if k <= max_k for v in (2, 4, 8, 16) if v <= max_v}
    return [(f"{k}", f"{v}", *rule_row(runs, prompts, rule)) for (k, v), rule in rules.items()]


def rules(runs: list[Run], prompts: list[str], k: int) -> list[tuple]:
    """The rules of round 2 against the one before it, at shortlist K, replayed on the same stored losses."""
    v = min(len(r.finalists[0].losses) for r in runs)
    named = {f"before round 2 (all-seed mean), V={v // 2}": lambda r: (validated_before(r, k, v // 2), (k + 1) * (v // 2)),
             f"validation mean, V={v // 2}": lambda r: validated(r, k, v // 2),
             f"interval's low end, V={v // 2}": lambda r: validated(r, k, v // 2, "lower"),
             f"validation mean, V={v}": lambda r: validated(r, k, v),
             f"adaptive {v // 2}+{v // 2} (futility at {v // 2})": lambda r: validated(r, k, (v // 2, v))}
    return [(name, *rule_row(runs, prompts, rule)) for name, rule in named.items()]


def rule_row(runs: list[Run], prompts: list[str], rule) -> tuple:
    """(mean validation images, pass rate, repaired, broken, share of runs that kept the original) of a rule
    `rule(run) -> (history index, images)`, judged on the evaluation seeds."""
    chosen = [r for r in runs if r.prompt in prompts]
    picks = {id(r): rule(r) for r in chosen}

    def statistic(given, event):
        def of(ps):
            pairs = [(b, a) for r in chosen if r.prompt in ps for b, a in zip(r.passed[r.roles["original"]], r.passed[picks[id(r)][0]])]
            return share(pairs, given, event)
        return bootstrap(prompts, of)

    kept = sum(picks[id(r)][0] == r.roles["original"] for r in chosen) / len(chosen)
    images = float(np.mean([picks[id(r)][1] for r in chosen]))
    return (images, statistic(lambda p: True, lambda p: p[1]), statistic(lambda p: not p[0], lambda p: p[1]),
            statistic(lambda p: p[0], lambda p: not p[1]), kept)


def fmt(ci) -> str:
    if ci is None:
        return "-"
    value, low, high = ci
    return "-" if value != value else f"{100 * value:.0f}% [{100 * low:.0f}, {100 * high:.0f}]"


def print_table(rows, task: str, settings: str) -> None:
    print(f"\n{task}, {settings}; judge pass rates over (prompt, evaluation seed) images, bootstrap 95% intervals over prompts\n")
    if task == "improve":
        print("| pick | prompts | judge pass rate | failing images repaired | passing images broken | mean loss (eval seeds) |")
    else:
        print("| pick | prompts | judge pass rate | failing images made to pass | passing images broken (attack success) | mean loss (eval seeds) |")
    print("|---|---|---|---|---|---|")
    for name, n, rate, repaired, broken, loss in rows:
        print(f"| {name} | {n} | {fmt(rate)} | {fmt(repaired)} | {fmt(broken)} | {loss:.3f} |")


def print_replay(rows, title: str, first: str = "| K | V ") -> None:
    print(f"\n{title}, every algorithm's runs pooled, judged on the evaluation seeds\n")
    print(f"{first}| validation images | judge pass rate | failing images repaired | passing images broken | runs that kept the original |")
    print("|---" * (first.count("|") + 5) + "|")
    for *names, images, rate, repaired, broken, kept in rows:
        print(f"| {' | '.join(names)} | {images:.1f} | {fmt(rate)} | {fmt(repaired)} | {fmt(broken)} | {100 * kept:.0f}% |")


def bar_chart(rows, title: str, path: Path) -> None:
    """Pass rate per row with its interval, drawn with PIL."""
    width, height, left, bottom, top = 120 + 110 * len(rows), 340, 50, 90, 40
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
        for j, line in enumerate(_wrap(name, 18)):
            draw.text((x0 - 10, height - bottom + 8 + 12 * j), line, fill="black", font=font)
    image.save(path)


def line_chart(series: dict[str, list[tuple[int, tuple[float, float, float]]]], baseline: float, title: str, path: Path) -> None:
    """Pass rate against budget, one line per series with its intervals, the original prompt's rate dashed."""
    width, height, left, right, top, bottom = 640, 380, 60, 190, 40, 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((left, 10), title, fill="black", font=font)
    budgets = sorted({b for points in series.values() for b, _ in points})
    lo = min([baseline] + [ci[1] for points in series.values() for _, ci in points])
    hi = max([baseline] + [ci[2] for points in series.values() for _, ci in points])
    lo, hi = max(0.0, lo - 0.05), min(1.0, hi + 0.05)

    def x(b):
        return left + (width - left - right) * (np.log(b) - np.log(budgets[0])) / max(1e-9, np.log(budgets[-1]) - np.log(budgets[0]))

    def y(v):
        return top + (height - top - bottom) * (hi - v) / (hi - lo)

    for b in budgets:
        draw.text((x(b) - 8, height - bottom + 8), str(b), fill="black", font=font)
    draw.text((left + 120, height - 20), "budget (candidates, log scale)", fill="black", font=font)
    for k in np.linspace(lo, hi, 5):
        draw.line([left, y(k), width - right, y(k)], fill=(225, 225, 225))
        draw.text((8, y(k) - 6), f"{100 * k:.0f}%", fill="black", font=font)
    for xa in range(left, width - right, 12):
        draw.line([xa, y(baseline), xa + 6, y(baseline)], fill=(120, 120, 120), width=2)
    draw.text((width - right + 8, y(baseline) - 6), "original prompt", fill=(120, 120, 120), font=font)
    colours = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (140, 86, 75)]
    for i, (name, points) in enumerate(series.items()):
        colour, points = colours[i % len(colours)], sorted(points)
        shift = (i - len(series) / 2) * 3
        draw.line([(x(b) + shift, y(ci[0])) for b, ci in points], fill=colour, width=2)
        for b, (value, low, high) in points:
            draw.line([x(b) + shift, y(low), x(b) + shift, y(high)], fill=colour, width=1)
            draw.ellipse([x(b) + shift - 3, y(value) - 3, x(b) + shift + 3, y(value) + 3], fill=colour)
        draw.text((width - right + 8, top + 14 * i), name, fill=colour, font=font)
    image.save(path)


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=Path, default=ROOT / "prompts" / "shapes_hard.txt")
    parser.add_argument("--task", default="improve", choices=["improve", "attack"])
    parser.add_argument("--algos", default="random,epo,hybrid")
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--eval-seeds", type=int, default=8)
    parser.add_argument("--validate", default="4,8", help="the bench's K,V: the largest shortlist and validation seeds to replay")
    parser.add_argument("--pick", default=",".join(map(str, DEFAULT_VALIDATE)), help="K,V of the headline's validated pick")
    parser.add_argument("--sweep", default="", help="more budgets, e.g. 10,20,80: the pass rate against the budget")
    parser.add_argument("--out", type=Path, default=None, help="bench folder (default runs/improve_quality-TASK)")
    parser.add_argument("--stride", type=int, default=1, help="every N-th prompt only (4: a quarter with every kind of prompt)")
    parser.add_argument("--analyse-only", action="store_true")
    parser.add_argument("bench_args", nargs="*", help="more `dpodiff bench` options after --, e.g. -- --positive --batch-size 16")
    args = parser.parse_args()
    args.out = args.out or ROOT / "runs" / f"improve_quality-{args.task}"
    k, v = map(int, args.pick.split(","))
    prompts = chosen_prompts(args.prompts, args.stride)
    sweep = sorted({int(b) for b in args.sweep.split(",") if b} | ({args.budget} if args.sweep else set()))
    folders = {b: args.out if b == args.budget else args.out / f"budget-{b}" for b in sweep} or {args.budget: args.out}
    if not args.analyse_only:
        for budget, folder in folders.items():
            run_bench(args, prompts, folder, budget)
    chosen = set(prompts)
    runs = [r for r in read_runs(args.out, args.task) if r.prompt in chosen]
    if not runs:
        sys.exit(f"no finished runs with evaluation seeds, validation and judge verdicts in {args.out}")
    rows, prompts = analyse(runs, k, v)
    settings = (f"{len(prompts)} prompts of {args.prompts.name}{f' (every {args.stride})' if args.stride > 1 else ''}, budget {args.budget}, "
                f"{args.seeds} search seeds, {len(runs[0].passed[runs[0].roles['original']])} evaluation seeds"
                + (f", bench options: {' '.join(args.bench_args)}" if args.bench_args else ""))
    if args.task == "attack":  # the verified attacks first: a broken image under a changed meaning is no finding
        print_attack_split(attack_split(runs, prompts, k, v), k, v)
    print_table(rows, args.task, settings)
    print_replay(replay(runs, prompts), "validated selection replayed")
    print_replay(rules(runs, prompts, k), f"the choice among the passing candidates and adaptive validation, K={k}", "| rule ")
    chart = args.out / "pass_rates.png"
    bar_chart(rows, f"{args.task}: judge pass rate on evaluation seeds ({settings})", chart)
    print(f"\nchart: {chart}")
    if len(folders) > 1:
        series: dict[str, list] = {}
        baseline = rows[0][2][0]
        print("\n| budget | pick | judge pass rate (eval seeds) | passing images broken |\n|---|---|---|---|")
        for budget, folder in folders.items():
            found = [r for r in read_runs(folder, args.task) if r.prompt in set(prompts)]
            if not found:
                continue
            for name, _, rate, _, broken, _ in analyse(found, k, v)[0][1:-1]:
                series.setdefault(name, []).append((budget, rate))
                print(f"| {budget} | {name} | {fmt(rate)} | {fmt(broken)} |")
        line_chart(series, baseline, f"{args.task}: judge pass rate on evaluation seeds against budget", args.out / "budget_sweep.png")
        print(f"\nchart: {args.out / 'budget_sweep.png'}")


if __name__ == "__main__":
    main()
