"""The scorer protocol: what dpodiff needs from a model that judges images against the original prompt.

One path serves black-box scoring (under no_grad) and GPO's shortcut gradient: pixel tensors
[N, 3, H, W] in [0, 1] go in, one loss per image comes out, differentiable in the pixels. Lower is
better for every scorer: CLIP's spherical distance as in the paper, minus the reward for reward
models (PickScore, HPSv2, ImageReward, the aesthetic predictor).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Scorer(Protocol):
    name: str  # what result files record (hub id, folder, or kind:path)

    @property
    def device(self) -> torch.device: ...

    @property
    def tokenizer(self):
        """The tokenizer of the text tower, to check that the original prompt fits its window."""

    @property
    def max_tokens(self) -> int: ...

    def target(self, prompt: str):
        """What `loss` compares images with, computed once per prompt without gradient (an embedding, token ids, ...)."""

    def loss(self, pixels: torch.Tensor, target) -> torch.Tensor:
        """[N] losses of [N, 3, H, W] pixels in [0, 1] against `target`, in float32 or wider; lower is better."""
