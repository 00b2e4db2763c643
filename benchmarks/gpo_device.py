"""GPO and hybrid end to end on a device: the shapes world and the SD 1.5 architecture (random weights).

Per run: seconds of GPO, seconds of one plain image (the calibration optimize() measures), GPO's
cost in images by the formula (sampling steps run) and as measured (GPO seconds / seconds per
image), the number of searched candidates, peak GPU memory, and the best loss found.

    .venv/bin/python benchmarks/gpo_device.py --device cuda            # shapes world + SD 1.5 at 512 px
    .venv/bin/python benchmarks/gpo_device.py --device cpu --no-sd15 --steps 10 --iterations 4 --budget 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from shortcut_gradient import build  # noqa: E402  (the SD 1.5 architecture with random weights)

import dpodiff  # noqa: E402
from dpodiff.models import load_models  # noqa: E402
from dpodiff.optimizers import GPOSettings  # noqa: E402
from dpodiff.spaces import SearchSpace, Slot, Span  # noqa: E402

PROMPT = "a red circle above a blue square"
SPACE = SearchSpace(PROMPT, positive=[Span(2, 5, ["red", "crimson", "scarlet"])],
                    negative=[Slot("red", ["green", "yellow", "orange"]), Slot("square", ["triangle", "circle"]),
                              Slot("quality", ["blurry", "low quality", "noisy"])])


def run(name, backend, scorer, algo, args, steps, guidance) -> tuple:
    if backend.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    result = dpodiff.optimize(PROMPT, pipeline=backend, scorer=scorer, space=SPACE, algorithm=algo, budget=args.budget, seeds=[0],
                              steps=steps, guidance=guidance, positive=True, gpo_settings=GPOSettings(iterations=args.iterations))
    wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if backend.device.type == "cuda" else float("nan")
    g = result.gpo
    return (name, algo, f"{backend.native_size}px {steps} steps", sum(g["seconds"]), g["seconds_per_image"],
            g["equivalent_images_formula"], g["equivalent_images_measured"], result.evaluations, wall, peak, result.original.loss, result.best.loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--no-sd15", action="store_true")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--sd15-budget", type=int, default=10, help="candidates for the SD 1.5 runs (each is 50 steps at 512 px)")
    args = parser.parse_args()
    rows = []
    backend, scorer, _ = load_models(None, None, args.device)
    for algo in ("gpo", "hybrid"):
        rows.append(run("shapes world", backend, scorer, algo, args, min(args.steps, 25), 3.0))
    if not args.no_sd15:
        device = torch.device(args.device)
        backend, scorer = build(True, device, torch.float16 if device.type == "cuda" else torch.float32)
        args.budget = args.sd15_budget
        for algo in ("gpo", "hybrid"):
            rows.append(run("SD 1.5 arch (random)", backend, scorer, algo, args, args.steps, 7.5))
    print(f"device {torch.cuda.get_device_name() if args.device.startswith('cuda') else args.device}; {args.iterations} GPO iterations, 1 seed")
    print("| model | algo | setting | GPO s | s per plain image | GPO images (formula) | GPO images (measured) | candidates | total s | peak GPU MiB | original loss | best loss |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
