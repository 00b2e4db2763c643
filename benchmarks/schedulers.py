"""GPO's shortcut loss trace under every scheduler on the shapes world, against DDIM's.

The shortcut estimates the clean latent from the scheduler's own noise level; with a wrong level
(e.g. DDIM arithmetic on Euler's sigma-scaled latents) the decoded estimate is garbage and the
loss trace sits far above DDIM's. Each row also gives the black-box loss of the prompt's own
images under that scheduler, the level the trace should be near.

    .venv/bin/python benchmarks/schedulers.py                     # paper settings: 20 iterations, 2 seeds
    .venv/bin/python benchmarks/schedulers.py --iterations 4 --steps 10
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from dpodiff.backends import Request
from dpodiff.backends.schedulers import SCHEDULERS
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--seeds", default="2")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backend, scorer, _ = load_models(None, None, "cpu", "float32")
    config = RunConfig.from_options(task="improve", seeds=args.seeds, steps=args.steps, guidance=args.guidance)
    space, _ = fit_space(build_task_space(PROMPT, config.task_spec), backend.tokenizer, backend.token_window)
    rows = []
    for name in SCHEDULERS:
        run = replace(config, scheduler=name)
        t0 = time.perf_counter()
        losses = gpo_trace(backend, scorer, space, run, args.iterations)
        rows.append((name, plain_loss(backend, scorer, run), losses, time.perf_counter() - t0))
    print(f"shapes world, {PROMPT!r}, {args.steps} steps, guidance {args.guidance}, {args.iterations} GPO iterations, seeds {args.seeds}")
    print("| scheduler | prompt's own loss | GPO trace min | mean | max | seconds |")
    print("|---|---|---|---|---|---|")
    for name, own, losses, seconds in rows:
        print(f"| {name} | {own:.3f} | {min(losses):.3f} | {statistics.fmean(losses):.3f} | {max(losses):.3f} | {seconds:.1f} |")
    ddim = rows[0][2]
    inside = [name for name, _, losses, _ in rows if min(ddim) - 0.1 <= statistics.fmean(losses) <= max(ddim) + 0.1]
    print(f"schedulers whose mean trace lies within DDIM's range +-0.1: {len(inside)}/{len(rows)}")


if __name__ == "__main__":
    main()
