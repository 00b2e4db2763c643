"""Stable Diffusion 1.x/2.x: one CLIP text encoder, its final-normed last layer as the UNet's context.

Works for epsilon, v-prediction (SD 2.x 768) and sample-prediction models alike; the prediction
type is read from the scheduler config.
"""

from __future__ import annotations

from dpodiff.backends.base import Backend, Encoded


class StableDiffusionBackend(Backend):
    family = "sd"
    pipeline_class = "StableDiffusionPipeline"

    def encode(self, texts: list[str]) -> Encoded:
        hidden, _ = self.pipe.encode_prompt(texts, self.device, 1, False)
        return Encoded(hidden)
