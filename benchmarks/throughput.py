"""Candidates scored per second: several candidates per pipeline call (batched) vs one candidate per call.

    .venv/bin/python benchmarks/throughput.py                 # the shapes world
    .venv/bin/python benchmarks/throughput.py --tiny          # tiny random models (dpodiff.testing)
    .venv/bin/python benchmarks/throughput.py --sweep 2,4,8,16,32 --skip-optimize  # evaluations/s by images per call
    .venv/bin/python benchmarks/throughput.py --main-job      # the README's main job: --batch-size 2 vs the default

Two measurements, each the best of --repeats:
  scoring: --candidates candidates x --seeds seeds generated and scored, with --seeds images per call (one
           candidate at a time), with candidates x seeds per call (batched), and one image per call;
  optimize: a whole improve run (random search, --budget candidates) with the same batch sizes.
Prints a table; the last line is the batched/one-at-a-time ratio of evaluations per second.
--main-job runs the README's main job (the `dpodiff improve` command) with one candidate per call
(--batch-size 2, the CPU default before whole candidates) and with the default, each --repeats times, and
prints wall time, seconds per candidate, the chosen negative prompt and the largest loss difference.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import dpodiff
from dpodiff.backends import GenerationSettings, Request
from dpodiff.models import load_pipeline, resolve_device
from dpodiff.spaces import SearchSpace, Slot

PROMPT = "a red circle above a blue square"
NEGATIVES = ["green", "blue square", "yellow", "pink triangle", "orange", "blurry", "noisy", "low quality"]


def models(tiny: bool):
    if tiny:
        from dpodiff.testing import build_tiny_pipeline, build_tiny_scorer

        root = Path(tempfile.mkdtemp())
        return str(build_tiny_pipeline(root / "sd")), str(build_tiny_scorer(root / "clip"))
    from dpodiff import shapes

    return str(shapes.PIPELINE_DIR), str(shapes.SCORER_DIR)


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


MAIN_JOB = ["improve", "a huge black circle", "--algo", "hybrid"]


def main_job(repeats: int, threads: int) -> None:
    """The README's main job through the CLI, one candidate per call against the default batch."""
    dpodiff_cli = Path(sys.executable).with_name("dpodiff")
    rows = []
    for name, extra in [("one candidate per call (--batch-size 2)", ["--batch-size", "2"]), ("default", [])]:
        for _ in range(repeats):
            out = Path(tempfile.mkdtemp()) / "run"
            t0 = time.perf_counter()
            subprocess.run([str(dpodiff_cli), *MAIN_JOB, "--out", str(out), "--threads", str(threads), *extra],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wall = time.perf_counter() - t0
            result = json.loads((out / "result.json").read_text())
            lines = [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()[1:]]
            losses = {(e["prompt"], e["negative_prompt"], s): x for e in lines for s, x in zip(e["seeds"], e["losses"])}
            rows.append((name, wall, result, losses))
    print(f"the main job: dpodiff {' '.join(MAIN_JOB)}; {threads} CPU threads; best of {repeats}")
    print("| batch | wall s | candidates | s per candidate | chosen negative prompt | batch size recorded |")
    print("|---|---|---|---|---|---|")
    best = {}
    for name, wall, result, losses in rows:
        if name not in best or wall < best[name][0]:
            best[name] = (wall, result, losses)
    for name, (wall, result, _) in best.items():
        n = result["evaluations"]
        print(f"| {name} | {wall:.1f} | {n} | {wall / n:.3f} | {result['best']['negative_prompt']!r} | {result['generation']['batch_size']} |")
    (before, _, a), (after, _, b) = best.values()
    shared = a.keys() & b.keys()
    diff = max((abs(a[k] - b[k]) for k in shared), default=float("nan"))
    print(f"default/one-candidate wall time: {after / before:.2f}; largest loss difference over {len(shared)} images of the same prompt pair and seed: {diff:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=8, help="candidates per batched call (the random search's batch is 8)")
    parser.add_argument("--budget", type=int, default=17)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-optimize", action="store_true")
    parser.add_argument("--sweep", help="comma-separated images per call to measure instead of the three modes, e.g. 2,4,8,16,32")
    parser.add_argument("--main-job", action="store_true", help="time the README's main job, --batch-size 2 against the default")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (spinning threads distort timings on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.main_job:
        return main_job(args.repeats, args.threads)
    model, scorer_name = models(args.tiny)
    device = resolve_device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    backend = load_pipeline(model, device, dtype)
    scorer = dpodiff.ClipScorer.from_pretrained(scorer_name, device, dtype)
    target = scorer.embed_text([PROMPT])
    seeds = list(range(args.seeds))
    negatives = (NEGATIVES * args.candidates)[: args.candidates]
    requests = [Request(PROMPT, negative, s) for negative in negatives for s in seeds]

    def score(batch: list[Request], settings: GenerationSettings) -> torch.Tensor:
        """Generate and score as the black-box search does: no autograd bookkeeping."""
        with torch.inference_mode():
            return scorer.loss(backend.generate(batch, settings), target)

    score(requests[:2], GenerationSettings(steps=2))  # warm-up

    modes = [("one image per call", 1), ("one candidate per call", args.seeds), ("batched candidates", args.candidates * args.seeds)]
    if args.sweep:
        modes = [(f"{n} images per call", n) for n in map(int, args.sweep.split(","))]
        requests = [Request(PROMPT, negative, s) for negative in NEGATIVES * 4 for s in seeds][: max(b for _, b in modes)]
        args.candidates = len(requests) // args.seeds
    space = SearchSpace(PROMPT, negative=[Slot("red", ["blue", "green", "yellow", "pink", "orange"]),
                                          Slot("circle", ["square", "triangle"]), Slot("quality", ["blurry", "low quality", "noisy"])])
    rows = []
    for name, batch in modes:
        settings = GenerationSettings(steps=args.steps, batch_size=batch)
        score(requests[:batch], GenerationSettings(steps=2, batch_size=batch))  # warm-up at this batch shape
        seconds = best_of(args.repeats, lambda: score(requests, settings))
        run_rate = None
        if not args.skip_optimize:
            t0 = time.perf_counter()
            result = dpodiff.optimize(PROMPT, pipeline=backend, scorer=scorer, space=space, algorithm="random", budget=args.budget,
                                      seeds=seeds, steps=args.steps, batch_size=batch)
            run_rate = result.evaluations / (time.perf_counter() - t0)
        rows.append((name, batch, args.candidates / seconds, run_rate))

    print(f"model {model}; device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} CPU threads'}); "
          f"{args.steps} steps, {args.seeds} seeds, {args.candidates} candidates")
    print("| mode | images per call | evaluations/s (scoring) | evaluations/s (full improve run) |")
    print("|---|---|---|---|")
    for name, batch, rate, run_rate in rows:
        print(f"| {name} | {batch} | {rate:.3f} | {'-' if run_rate is None else f'{run_rate:.3f}'} |")
    if args.sweep:
        return
    one, batched = rows[1], rows[2]
    run_ratio = f"; full run {batched[3] / one[3]:.2f}" if one[3] else ""
    print(f"batched/one-candidate-at-a-time evaluations per second: scoring {batched[2] / one[2]:.2f}{run_ratio}")


if __name__ == "__main__":
    main()
