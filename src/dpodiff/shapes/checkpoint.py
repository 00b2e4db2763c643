"""Training that survives: a stage's full state saved every few minutes, and resumed exactly.

A checkpoint holds what the next step depends on (every module's weights, the optimiser's moments, the
data and noise generators' states and the step reached), written to a temporary file and renamed, so a
kill at any moment leaves the last good one. Resumed, a run takes the same steps as one never stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dpodiff.errors import UsageError

CHECKPOINT_MINUTES = 10.0


@dataclass
class Checkpointed:
    """One stage's training state, and the loop over its steps that saves and stops it."""

    path: Path  # WORKDIR/STAGE.ckpt
    modules: dict[str, torch.nn.Module]
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator  # which training pairs are drawn
    generator: torch.Generator | None = None  # noise, timesteps, augmentations
    every_minutes: float = CHECKPOINT_MINUTES
    step: int = 0  # steps taken, by this process and the ones before it
    minutes: float = 0.0  # wall time of those steps
    extra: dict = field(default_factory=dict)  # anything else the stage keeps (its log)

    def resume(self, allowed: bool) -> bool:
        """Load the checkpoint if there is one: with `allowed` (--resume), else refuse to overwrite it."""
        if not self.path.exists():
            return False
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        if not allowed:
            raise UsageError(f"{self.path} holds step {state['step']} of an unfinished run: pass --resume to continue it, "
                             "or delete the file to start the stage over.")
        for name, module in self.modules.items():
            module.load_state_dict(state["modules"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        if self.generator is not None:
            self.generator.set_state(state["generator"])
        self.step, self.minutes, self.extra = state["step"], state["minutes"], state["extra"]
        return True

    def save(self) -> None:
        state = {"modules": {name: m.state_dict() for name, m in self.modules.items()}, "optimizer": self.optimizer.state_dict(),
                 "rng": self.rng.bit_generator.state, "generator": None if self.generator is None else self.generator.get_state(),
                 "step": self.step, "minutes": self.minutes, "extra": self.extra}
        partial = self.path.with_name(self.path.name + ".partial")
        partial.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, partial)
        os.replace(partial, self.path)

    def steps(self, total: int, name: str, max_minutes: float | None = None) -> Iterator[int]:
        """The steps still to take, with a progress bar and its ETA; a checkpoint every `every_minutes` and
        when `max_minutes` runs out (the loop then ends early). A finished stage's checkpoint is removed."""
        start = last = time.time()
        bar = tqdm(total=total, initial=self.step, desc=name, mininterval=20, dynamic_ncols=True)
        stopped = False
        for step in range(self.step, total):
            yield step
            self.step = step + 1
            bar.update()
            now = time.time()
            if max_minutes is not None and now - start > max_minutes * 60 and self.step < total:
                bar.write(f"[{name}] time limit reached at step {self.step} of {total}; --resume continues it")
                stopped = True
                break
            if now - last > self.every_minutes * 60:
                self.minutes += (now - last) / 60
                self.save()
                last = now
        bar.close()
        self.minutes += (time.time() - last) / 60
        if stopped:
            self.save()
        elif self.path.exists():
            self.path.unlink()

    @property
    def finished(self) -> bool:
        return not self.path.exists()
