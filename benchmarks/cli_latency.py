"""How fast the CLI answers before any model work: --help, an unknown option, and a bad value.

Each is a fresh `dpodiff` process (import time included), best of --repeats, against a bare
`python -c pass` measured in the same run. Target: under 1.5 s on a 2-core machine.

    .venv/bin/python benchmarks/cli_latency.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

EXE = str(Path(sys.executable).parent / "dpodiff")
CASES = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "dpodiff --help": [EXE, "--help"],
    "dpodiff improve --help": [EXE, "improve", "--help"],
    "unknown option (--stepz)": [EXE, "improve", "a red circle", "--stepz", "3"],
    "bad value (--steps 0)": [EXE, "improve", "a red circle", "--steps", "0"],
    "bad value (--guidance nan)": [EXE, "generate", "a red circle", "--guidance", "nan"],
}


def seconds(command: list[str], repeats: int) -> tuple[float, int]:
    best, code = float("inf"), 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        code = subprocess.run(command, capture_output=True).returncode
        best = min(best, time.perf_counter() - t0)
    return best, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = [(name, *seconds(command, args.repeats)) for name, command in CASES.items()]
    base = rows[0][1]
    print("| command | exit | seconds (best) | x python startup |")
    print("|---|---|---|---|")
    for name, s, code in rows:
        print(f"| {name} | {code} | {s:.2f} | {s / base:.1f} |")


if __name__ == "__main__":
    main()
