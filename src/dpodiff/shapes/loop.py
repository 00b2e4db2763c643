"""What every training stage shares: the learning-rate schedule, the progress bar, where and how a stage trains
(device, resume, checkpoints), and how a finished stage is recognised and logged."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import CHECKPOINT_MINUTES, Checkpointed


def lr_at(step: int, total: int, base: float, warmup: int = 100) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def progress(total: int, desc: str):
    return tqdm(total=total, desc=desc, mininterval=20, dynamic_ncols=True)


@dataclass
class Training:
    """Where and how a stage trains: the device, whether a stopped stage's checkpoint may be resumed, how often to save."""

    device: str = "cpu"
    resume: bool = False
    checkpoint_minutes: float = CHECKPOINT_MINUTES

    def state(self, out: Path, modules: dict, optimizer, rng: np.random.Generator, generator: torch.Generator | None = None) -> Checkpointed:
        """The stage's training state, from its checkpoint (OUT.ckpt beside OUT) when there is one and --resume allows it."""
        state = Checkpointed(out.parent / f"{out.name}.ckpt", modules, optimizer, rng, generator, self.checkpoint_minutes)
        if state.resume(self.resume):
            print(f"[{out.name}] resuming at step {state.step} ({state.minutes:.1f} min so far)")
        return state

    def on_device(self, tensors):
        return tuple(t.to(self.device) for t in tensors)

    def noise(self, shape, generator: torch.Generator) -> torch.Tensor:
        """Gaussian noise drawn on the CPU (the same on every device), then moved."""
        return torch.randn(shape, generator=generator).to(self.device)


def finished(out: Path, name: str) -> bool:
    """A stage whose output is saved and that left no checkpoint (stopped early, it did) is done."""
    if (out / "config.json").exists() and not (out.parent / f"{out.name}.ckpt").exists():
        print(f"[{name}] found {out}, skipping")
        return True
    return False


def write_steps(out: Path, name: str, state: Checkpointed, planned: int, **more) -> None:
    """NAME_steps.json beside the stage's output: the steps reached of those planned, and their wall time."""
    (out.parent / f"{name}_steps.json").write_text(json.dumps(
        {"steps": state.step, "planned": planned, "minutes": round(state.minutes, 2), **more}))
