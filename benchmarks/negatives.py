"""Does the shapes world answer negative prompts? Flaw and pass rates with and without, per generator.

For each generator (a pipeline folder; default the shipped one), the same held-out prompts and seeds are drawn
with no negative prompt and with each negative of the table: one flaw ("blurry"), "two, three" for unasked
copies, every flaw at once, another basic colour for single shapes, and the colour-swapped scene for two
shapes. dpodiff/shapes/responsiveness.py says how flaws are read off the images. `--negative-mode` picks how
the negative steers (cfg: SD's; perp: Perp-Neg, dpodiff/backends/guidance.py); repeat it to compare.

    .venv/bin/python benchmarks/negatives.py --model runs/release2/pipeline --model src/dpodiff/shapes/weights/pipeline
    .venv/bin/python benchmarks/negatives.py --negative-mode cfg --negative-mode perp
    .venv/bin/python benchmarks/negatives.py --asked      # does asking for a flaw draw it, and does negating it then remove it?

Each generator's rows are saved to --out as JSON when it finishes (a rerun skips generators already there);
about 5 minutes per generator at the defaults on 2 idle cores (as many images as the model card's eval).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from dpodiff.shapes import PIPELINE_DIR
from dpodiff.shapes.responsiveness import DEFECTS, AskedRow, Row, asked_response, asked_table, negative_response, table

ROOT = Path(__file__).resolve().parent.parent
ROWS = len(DEFECTS) + 5  # the baseline, each flaw, copies, every flaw, another colour, swapped scene


def fingerprint(folder: Path) -> str:
    """Which generator this is: a hash of its UNet's weights."""
    weights = next((folder / "unet").glob("*.safetensors"))
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:12]


def perp_generate(pipe):
    """evaluate.generate's images (same prompts, seeds, steps and guidance) under Perp-Neg, through dpodiff's backend."""
    from dpodiff.backends import GenerationSettings, Request, as_backend
    from dpodiff.report.images import to_pil
    from dpodiff.shapes.evaluate import GUIDANCE, STEPS

    backend = as_backend(pipe)
    settings = GenerationSettings(STEPS, GUIDANCE, batch_size=50, negative_mode="perp")

    def draw(prompts, seeds, negative):
        negatives = negative if isinstance(negative, list) else [negative or ""] * len(prompts)
        return to_pil(backend.generate([Request(p, n, s) for p, n, s in zip(prompts, negatives, seeds)], settings))
    return draw


def measure(folder: Path, n_single: int, n_two: int, mode: str, asked: bool = False) -> list[Row] | list[AskedRow]:
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    bar = tqdm(total=len(DEFECTS) + 1 if asked else ROWS, desc=f"{folder.name} ({mode})", unit="row")

    def progress(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(0 if name in ("no negative prompt", DEFECTS[0]) else 1)

    generate = perp_generate(pipe) if mode == "perp" else None
    if asked:
        rows = asked_response(pipe, n_single, progress=progress, generate=generate)
    else:
        rows = negative_response(pipe, n_single, n_two, progress=progress, generate=generate)
    bar.update(1)
    bar.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", help="a pipeline folder (repeatable; default: the shipped one)")
    parser.add_argument("--n-single", type=int, default=100, help="single-shape prompts (one seed each)")
    parser.add_argument("--n-two", type=int, default=100, help="two-shape prompts (one seed each)")
    parser.add_argument("--negative-mode", action="append", choices=("cfg", "perp"),
                        help="how the negative steers (repeatable; default cfg)")
    parser.add_argument("--card", action="store_true",
                        help="write the shipped generator's rows into the shapes world's metrics and model card (per mode)")
    parser.add_argument("--asked", action="store_true",
                        help="single shapes with each flaw asked for in the prompt, with and without it as the negative prompt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "negatives")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    folders = args.model or [PIPELINE_DIR]
    for folder in folders:
        if not (folder / "model_index.json").exists():
            parser.error(f"--model {folder}: not a diffusers pipeline folder (no model_index.json)")
    for folder in folders:
        for mode in args.negative_mode or ["cfg"]:
            suffix = ("" if mode == "cfg" else f"-{mode}") + ("-asked" if args.asked else "")
            path = args.out / f"{fingerprint(folder)}-{args.n_single}-{0 if args.asked else args.n_two}{suffix}.json"
            kind = AskedRow if args.asked else Row
            if path.exists():
                rows = [kind(**r) for r in json.loads(path.read_text())["rows"]]
            else:
                start = time.perf_counter()
                rows = measure(folder, args.n_single, args.n_two, mode, args.asked)
                path.write_text(json.dumps({"model": str(folder), "negative_mode": mode, "minutes": (time.perf_counter() - start) / 60,
                                            "rows": [asdict(r) for r in rows]}, indent=1))
            print(f"\n{folder}, --negative-mode {mode} ({path.name})\n")
            print("\n".join(asked_table(rows) if args.asked else table(rows)))
            if args.asked:
                continue
            if args.card and folder.resolve() == PIPELINE_DIR.resolve():
                write_rows(f"negatives{suffix.replace('-', '_')}", args.n_single, args.n_two, rows)


def write_rows(key: str, n_single: int, n_two: int, rows: list[Row]) -> None:
    from dpodiff.shapes import WEIGHTS_DIR
    from dpodiff.shapes.card import write_card

    metrics = json.loads((WEIGHTS_DIR / "metrics.json").read_text())
    metrics[key] = {"n_single": n_single, "n_two": n_two, "rows": [asdict(r) for r in rows]}
    (WEIGHTS_DIR / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    write_card(metrics)


if __name__ == "__main__":
    main()
