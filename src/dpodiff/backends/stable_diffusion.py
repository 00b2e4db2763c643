"""Generating images with a diffusers Stable Diffusion 1.x/2.x pipeline, one seed per image."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image


@dataclass(frozen=True)
class GenerationSettings:
    steps: int = 50
    guidance: float = 7.5
    height: int | None = None  # None: the model's native size
    width: int | None = None
    batch_size: int | None = None  # images per pipeline call; None: all images of a request list at once


@dataclass(frozen=True)
class Request:
    """One image to make: a positive prompt, a negative prompt and the seed of its initial noise."""

    prompt: str
    negative_prompt: str
    seed: int


def native_size(pipe) -> int:
    return int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)


def seed_generator(seed: int) -> torch.Generator:
    """Noise is drawn on the CPU, so a seed gives the same image on every device."""
    return torch.Generator("cpu").manual_seed(int(seed))


def generate(pipe, requests: list[Request], settings: GenerationSettings) -> list[Image.Image]:
    """Images for `requests`, in order; `settings.batch_size` of them per pipeline call.

    The same requests in the same batches give bit-identical images on the CPU; another batching gives
    the same images within float tolerance.
    """
    size = native_size(pipe)
    step = settings.batch_size or len(requests)
    images: list[Image.Image] = []
    for i in range(0, len(requests), step):
        batch = requests[i : i + step]
        out = pipe(
            prompt=[r.prompt for r in batch],
            negative_prompt=[r.negative_prompt for r in batch],
            generator=[seed_generator(r.seed) for r in batch],
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance,
            height=settings.height or size,
            width=settings.width or size,
            output_type="pil",
        )
        images.extend(out.images)
    return images
