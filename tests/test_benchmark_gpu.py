"""benchmarks/gpu.py --tiny: the GPU benchmark's code paths, on the CPU with the tiny test models."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_runs_tiny_on_the_cpu():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--tiny", "--steps", "3", "--budget", "4", "--iterations", "3",
                          "--batch", "4", "--threads", "1", "--models", "sd15,sdxl,sd35m,flux"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    tables = out.stdout.split("### ")[1:]
    assert [t.split(" (")[0] for t in tables] == ["tiny sd15", "tiny sdxl", "tiny sd35m", "tiny flux"]
    for table, unet in zip(tables, (True, True, False, False)):
        rows = {line.split("|")[1].strip(): line.split("|")[2:-1] for line in table.splitlines() if line.startswith("| ") and "---" not in line}
        assert float(rows["EPO evaluation batch"][0]) > 0 and float(rows["GPO iteration"][0]) > 0
        assert float(rows["GPO iteration, no checkpointing"][0]) > 0 and "checkpointing on" in rows["GPO iteration"][2]
        assert "3 GPO iterations + 4 candidates, 1 seed" in rows["hybrid run"][2]
        assert rows["EPO evaluation batch"][1].strip() == "-"  # no GPU memory on the CPU
        speeds = {label: float(cells[0]) for label, cells in rows.items() if label in ("reference pattern", "one candidate a call", "default batch", "classic attention")}
        assert len(speeds) == 3 + unet and all(v > 0 for v in speeds.values())  # classic attention: UNets only
        assert rows["reference pattern"][1].strip() == "1.00"
        assert re.match(r"\d+M parameters", rows["weights"][0].strip())


def test_the_flow_architectures_have_the_published_sizes():
    """SD3.5 medium and Flux-dev as benchmarks/gpu.py builds them (on the meta device: no memory, no time)."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from architectures import PIPELINES, built_on

    def billions(module) -> float:
        return round(sum(p.numel() for p in module.parameters()) / 1e9, 2)

    with built_on(torch.device("meta"), torch.bfloat16):
        sd35m, flux = PIPELINES["sd35m"](), PIPELINES["flux"]()
    assert billions(flux.transformer) == 11.90 and billions(flux.text_encoder_2) == 4.76  # Flux-dev's 12B; T5-XXL's encoder
    assert billions(sd35m.transformer) == 2.24 and billions(sd35m.text_encoder_2) == 0.69  # MMDiT-X; OpenCLIP bigG
    assert flux.transformer.dtype == torch.bfloat16 and flux.transformer.device.type == "meta"
