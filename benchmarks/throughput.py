"""Seconds per scored candidate and per full improve run, one image per pipeline call vs all seeds in one.

    .venv/bin/python benchmarks/throughput.py                 # the shapes world
    .venv/bin/python benchmarks/throughput.py --tiny          # tiny random models (dpodiff.testing)

Prints a table; the last line is the batched/unbatched speed ratio measured in this run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import dpodiff
from dpodiff.backends.stable_diffusion import GenerationSettings, Request, generate
from dpodiff.models import load_pipeline
from dpodiff.spaces import SearchSpace, Slot

PROMPT = "a red circle above a blue square"


def models(tiny: bool):
    if tiny:
        from dpodiff.testing import build_tiny_pipeline, build_tiny_scorer

        root = Path(tempfile.mkdtemp())
        return str(build_tiny_pipeline(root / "sd")), str(build_tiny_scorer(root / "clip"))
    from dpodiff import shapes

    return str(shapes.PIPELINE_DIR), str(shapes.SCORER_DIR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model, scorer_name = models(args.tiny)
    pipe = load_pipeline(model, torch.device("cpu"), torch.float32)
    scorer = dpodiff.ClipScorer.from_pretrained(scorer_name)
    seeds = list(range(args.seeds))
    requests = [Request(PROMPT, "green", s) for s in seeds]
    generate(pipe, requests[:1], GenerationSettings(steps=2))  # warm-up

    rows = []
    per_candidate = {}
    for batch in (1, args.seeds):
        settings = GenerationSettings(steps=args.steps, batch_size=batch)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            scorer.losses(generate(pipe, requests, settings), PROMPT)
            times.append(time.perf_counter() - t0)
        per_candidate[batch] = min(times)
        space = SearchSpace(PROMPT, negative=[Slot("red", ["blue", "green", "yellow", "pink", "orange"]),
                                              Slot("circle", ["square", "triangle"]), Slot("quality", ["blurry", "low quality", "noisy"])])
        t0 = time.perf_counter()
        result = dpodiff.optimize(PROMPT, pipeline=pipe, scorer=scorer, space=space, budget=args.budget, seeds=seeds,
                                  steps=args.steps, batch_size=batch)
        run_seconds = time.perf_counter() - t0
        rows.append((batch, per_candidate[batch], per_candidate[batch] / args.seeds, run_seconds, result.evaluations))

    print(f"model {model}; {args.steps} steps, {args.seeds} seeds, CPU threads {torch.get_num_threads()}")
    print("| images per call | s per candidate | s per image | full improve run (s) | candidates |")
    print("|---|---|---|---|---|")
    for batch, cand, image, run, n in rows:
        print(f"| {batch} | {cand:.3f} | {image:.3f} | {run:.1f} | {n} |")
    print(f"batched/unbatched speed ratio: {per_candidate[1] / per_candidate[args.seeds]:.2f}")


if __name__ == "__main__":
    main()
