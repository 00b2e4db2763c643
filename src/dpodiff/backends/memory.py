"""Images per sampling run: whole candidates up to a measured size, and on a GPU no more than its memory holds.

On 2 CPU cores, 16 images per call score 3.4x the candidates per second of one candidate's 2 images
at the shapes world's 64 px, and 32 gain 1% more (`benchmarks/throughput.py --sweep 2,4,8,16,32`); the
16 images of the pixel budget below serve every device. Batching changes an image only within float
tolerance (BATCH_TOLERANCE, tested): a candidate's loss is the same whatever else shares its call.

On a GPU each sampling run measures its peak memory per image and pixel, and later runs make at most
as many images as the free memory (or --max-memory) holds. An out-of-memory error halves the batch and
tries again, so a run that guessed too high goes on instead of ending.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import torch

MAX_IMAGES = 16  # per sampling run: 32 score 1% more candidates per second on the CPU than 16
PIXEL_BUDGET = MAX_IMAGES * 512 * 512  # and fewer above 512x512: 4 at SDXL's 1024x1024
BATCH_TOLERANCE = {"pixel": 1e-4, "loss": 1e-5}  # shapes world, batch 1/2/16: 8e-6 and 1.5e-6 measured
HEADROOM = 0.9  # of the free memory: the allocator fragments, and the scorer runs after the sampler
GIB = 2**30


def default_batch_size(n_seeds: int, pixels: int = 512 * 512) -> int:
    """Whole candidates (all seeds of each) up to PIXEL_BUDGET: a candidate is never split between calls
    unless it alone has more images than the budget."""
    images = max(1, min(MAX_IMAGES, PIXEL_BUDGET // pixels))
    return max(n_seeds, images // n_seeds * n_seeds)


@dataclass
class MemoryBudget:
    """What a backend has learnt about its device's memory: per image and pixel, and the images per run that fit."""

    max_bytes: int | None = None  # --max-memory: the most device memory this process may hold; None: what is free
    bytes_per_pixel: float | None = None  # the largest measured: (peak - before) / (images x pixels)
    cap: int | None = None  # images per run after an out-of-memory error; None: none seen

    def images(self, wanted: int, pixels: int, device: torch.device) -> int:
        """How many of `wanted` images the next run may make."""
        n = wanted if self.cap is None else min(wanted, self.cap)
        if device.type != "cuda":
            return n
        if self.bytes_per_pixel is None:
            return 1 if self.max_bytes is not None else n  # under a cap, the first run measures on one image
        fits = (self.limit(device) - torch.cuda.memory_allocated(device)) / (self.bytes_per_pixel * pixels)
        return max(1, min(n, math.floor(fits)))

    def limit(self, device: torch.device) -> float:
        """Bytes this process may hold: what it holds plus the free memory (with headroom), at most --max-memory."""
        free, _ = torch.cuda.mem_get_info(device)
        usable = torch.cuda.memory_reserved(device) + HEADROOM * free
        return usable if self.max_bytes is None else min(usable, self.max_bytes)

    @contextmanager
    def measured(self, device: torch.device, images: int, pixels: int):
        """Measure one sampling run's peak memory per image and pixel (CUDA only)."""
        if device.type != "cuda":
            yield
            return
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield
        used = (torch.cuda.max_memory_allocated(device) - before) / (images * pixels)
        self.bytes_per_pixel = max(used, self.bytes_per_pixel or 0.0)

    def halve(self, images: int) -> None:
        """After an out-of-memory error on `images` (> 1) images: half of them per run from now on."""
        self.cap = images // 2
        warnings.warn(f"dpodiff: out of memory making {images} images at once; going on with {self.cap} per call "
                      "(--batch-size or --max-memory sets it from the start).", stacklevel=3)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
