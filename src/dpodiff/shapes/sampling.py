"""Drawing shapes-world images through a diffusers pipeline with the model's own settings, in batches."""

from __future__ import annotations

import torch

from .grammar import DEFECTS

# Recommended defaults for this model: the guidance sweep in the card peaks at 3
# (7.5, SD's usual value, over-saturates this small model's shapes).
STEPS, GUIDANCE = 25, 3.0
# A negative prompt naming every flaw this world knows, as SD users write "blurry, lowres, ...".
QUALITY_NEGATIVE = ", ".join(DEFECTS + ("two", "three"))


def generate(pipe, prompts: list[str], seeds: list[int], steps: int = STEPS, guidance: float = GUIDANCE,
             negative: str | list[str] | None = None, batch: int = 50):
    images = []
    for i in range(0, len(prompts), batch):
        neg = negative[i: i + batch] if isinstance(negative, list) else (
            [negative] * len(prompts[i: i + batch]) if negative else None)
        images += pipe(prompts[i: i + batch], negative_prompt=neg, num_inference_steps=steps,
                       guidance_scale=guidance,
                       generator=[torch.Generator().manual_seed(s) for s in seeds[i: i + batch]]).images
    return images
