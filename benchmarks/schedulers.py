"""GPO's shortcut loss trace under every scheduler on the shapes world, against DDIM's (or on a flow-matching
model, SD3 or Flux, under its own flow-matching Euler), and against black-box losses.

The shortcut estimates the clean latent from the scheduler's own noise level; with a wrong level
(e.g. DDIM arithmetic on Euler's sigma-scaled latents) the decoded estimate is garbage and the
loss trace sits far above DDIM's. Each row also gives the black-box loss of the prompt's own
images under that scheduler, the level the trace should be near.

    .venv/bin/python benchmarks/schedulers.py                     # paper settings: 20 iterations, 2 seeds
    .venv/bin/python benchmarks/schedulers.py --iterations 4 --steps 10
    .venv/bin/python benchmarks/schedulers.py --model PATH/TO/SD3 --scorer PATH/TO/CLIP --guidance 4.5
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import replace

import torch

from dpodiff.backends import Request
from dpodiff.backends.schedulers import SCHEDULERS, is_flow_matching, scheduler_name
from dpodiff.config import RunConfig
from dpodiff.gradient_search import run_gpo
from dpodiff.models import load_models
from dpodiff.optimizers import GPOSettings
from dpodiff.spaces.build import build_task_space
from dpodiff.spaces.fit import fit_space

PROMPT = "a red circle above a blue square"


def gpo_trace(backend, scorer, space, config: RunConfig, iterations: int) -> list[float]:
    _, trace = run_gpo(backend, scorer, space, config.task_spec, list(config.seeds), config.generation(),
                       GPOSettings(iterations=iterations), config.search_seed)
    return trace.losses


def plain_loss(backend, scorer, config: RunConfig) -> float:
    with torch.inference_mode():
        images = backend.generate([Request(PROMPT, "", s) for s in config.seeds], config.generation())
        return scorer.loss(images, scorer.embed_text([PROMPT])).mean().item()


def candidate_losses(backend, scorer, space, config: RunConfig, n: int) -> list[float]:
    """Black-box losses of n random candidates of the space (the seeds' mean each): the range GPO's trace should lie in."""
    rng = random.Random(0)
    target = scorer.embed_text([PROMPT])
    losses = []
    with torch.inference_mode():
        for _ in range(n):
            _, negative = space.render([rng.randrange(k) for k in space.sizes()])
            images = backend.generate([Request(PROMPT, negative, s) for s in config.seeds], config.generation())
            losses.append(scorer.loss(images, target).mean().item())
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a diffusers folder or hub id (default: the shapes world)")
    parser.add_argument("--scorer", default=None, help="with --model: its scorer (default: CLIP ViT-B/32)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--seeds", default="2")
    parser.add_argument("--candidates", type=int, default=8, help="random candidates whose black-box losses give the range")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backend, scorer, name = load_models(args.model, args.scorer, "cpu", "float32")
    config = RunConfig.from_options(task="improve", seeds=args.seeds, steps=args.steps, guidance=args.guidance)
    space, _ = fit_space(build_task_space(PROMPT, config.task_spec), backend.tokenizer, backend.token_window)
    # a flow-matching model samples with its own scheduler only (the others are for noise-prediction models)
    names = [None] if is_flow_matching(backend.own_scheduler) else list(SCHEDULERS)
    rows = []
    for scheduler in names:
        run = replace(config, scheduler=scheduler)
        t0 = time.perf_counter()
        losses = gpo_trace(backend, scorer, space, run, args.iterations)
        rows.append((scheduler or scheduler_name(backend.own_scheduler), plain_loss(backend, scorer, run), losses, time.perf_counter() - t0))
    black_box = candidate_losses(backend, scorer, space, replace(config, scheduler=names[0]), args.candidates)
    print(f"{args.model or 'shapes world'} ({backend.family}), {PROMPT!r}, {args.steps} steps, guidance {args.guidance}, "
          f"{args.iterations} GPO iterations, seeds {args.seeds}")
    print("| scheduler | prompt's own loss | GPO trace min | mean | max | seconds |")
    print("|---|---|---|---|---|---|")
    for scheduler, own, losses, seconds in rows:
        print(f"| {scheduler} | {own:.3f} | {min(losses):.3f} | {statistics.fmean(losses):.3f} | {max(losses):.3f} | {seconds:.1f} |")
    low, high = min(black_box), max(black_box)
    inside = [n for n, _, losses, _ in rows if low - 0.1 <= statistics.fmean(losses) <= high + 0.1]
    print(f"black-box losses of {args.candidates} random candidates under {rows[0][0]}: {low:.3f} to {high:.3f}")
    print(f"schedulers whose mean trace lies within that range +-0.1: {len(inside)}/{len(rows)}")
    if len(rows) > 1:
        ddim = rows[0][2]
        inside = [n for n, _, losses, _ in rows if min(ddim) - 0.1 <= statistics.fmean(losses) <= max(ddim) + 0.1]
        print(f"schedulers whose mean trace lies within DDIM's trace range +-0.1: {len(inside)}/{len(rows)}")


if __name__ == "__main__":
    main()
