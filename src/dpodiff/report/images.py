"""Image tensors to PIL, the one place where pixels leave torch (for saving and for judges)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """[N, 3, H, W] in [0, 1] -> RGB images, rounded as diffusers' PIL output is."""
    array = (pixels.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(a) for a in array]


def from_pil(images: list[Image.Image]) -> torch.Tensor:
    """RGB images -> [N, 3, H, W] float32 in [0, 1]."""
    array = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0 for im in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2)
