"""CPU threads: `dpodiff generate` (2 seeds, the shapes world) with dpodiff's default, one thread and torch's own default,
on an idle machine and with 1 or 2 other processes keeping cores busy.

Each cell is the median of --repeats runs of the generation alone (result.json's `seconds`, model loading left out);
every run is a fresh `dpodiff generate` process, and the images of all runs must be identical pixel for pixel.

    .venv/bin/python benchmarks/threads.py            # run it with nothing else on the machine
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

PROMPT = "a red circle above a blue square"


def burn() -> None:
    while True:
        pass


def torch_default_threads() -> int:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], capture_output=True, text=True, check=True)
    return int(out.stdout)


def generate(threads: int | None, out: Path, steps: int) -> tuple[float, int, bytes]:
    """(seconds of generation, threads used, pixels of the images) of one fresh `dpodiff generate`."""
    command = [sys.executable, "-m", "dpodiff.cli", "generate", PROMPT, "--seeds", "2", "--steps", str(steps), "--guidance", "3",
               "--device", "cpu", "--out", str(out), "--overwrite"] + (["--threads", str(threads)] if threads else [])
    subprocess.run(command, check=True, capture_output=True)
    result = json.loads((out / "result.json").read_text())
    pixels = b"".join(Image.open(out / image["file"]).tobytes() for image in result["images"])
    return result["seconds"], result.get("cpu_threads", 0), pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--busy", default="0,1,2", help="comma list: other processes keeping a core busy")
    args = parser.parse_args()
    old = torch_default_threads()
    settings = [("dpodiff default", None), ("1 thread", 1), (f"torch default ({old})", old)]
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as folder:
        for busy in [int(b) for b in args.busy.split(",")]:
            burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(busy)]
            for b in burners:
                b.start()
            try:
                for label, threads in settings:
                    runs = [generate(threads, Path(folder) / "run", args.steps) for _ in range(args.repeats)]
                    for _, _, pixels in runs:
                        reference = reference or pixels
                        if pixels != reference:
                            sys.exit(f"images differ with {label} and {busy} busy: thread counts must not change results")
                    rows.append((busy, label, runs[0][1], statistics.median(r[0] for r in runs)))
            finally:
                for b in burners:
                    b.terminate()
    print(f"`dpodiff generate` of 2 seeds, shapes world, {args.steps} steps, median of {args.repeats}; images identical in every run\n")
    print("| other busy processes | threads | torch threads used | seconds | x 1 thread |")
    print("|---|---|---|---|---|")
    for busy, label, used, seconds in rows:
        single = next(s for b, lab, _, s in rows if b == busy and lab == "1 thread")
        print(f"| {busy} | {label} | {used} | {seconds:.2f} | {seconds / single:.2f} |")


if __name__ == "__main__":
    main()
