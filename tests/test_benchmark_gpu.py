"""benchmarks/gpu.py --tiny: the GPU benchmark's code paths, on the CPU with the tiny test models."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_runs_tiny_on_the_cpu():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--tiny", "--steps", "3", "--budget", "4", "--iterations", "3",
                          "--batch", "4", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    tables = out.stdout.split("### ")[1:]
    assert [t.split(" (")[0] for t in tables] == ["tiny sd15", "tiny sdxl"]
    for table in tables:
        rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in table.splitlines() if line.startswith("| ") and "---" not in line}
        assert float(rows["EPO evaluation batch"][0]) > 0 and float(rows["GPO iteration"][0]) > 0
        assert "3 GPO iterations + 4 candidates, 1 seed" in rows["hybrid run"][2]
        assert rows["EPO evaluation batch"][1].strip() == "-"  # no GPU memory on the CPU
        speeds = {label: float(cells[0]) for label, cells in rows.items() if label in ("reference pattern", "one candidate a call", "default batch", "classic attention")}
        assert len(speeds) == 4 and all(v > 0 for v in speeds.values())
        assert rows["reference pattern"][1].strip() == "1.00"
        assert re.match(r"\d+M parameters", rows["weights"][0].strip())
