"""Stable Diffusion XL: two CLIP text encoders, a pooled text embedding and size conditioning.

The UNet's context is the penultimate layer of both encoders, concatenated along features; it
also reads the second encoder's projected pooled output (taken at the end-of-text row, which for a
relaxed prompt is the layout's fixed end row) and `add_time_ids` (original size, crop, target size).
"""

from __future__ import annotations

import torch

from dpodiff.backends.base import Backend, Conditioning, Encoded
from dpodiff.backends.relaxed import RelaxedEncoder


class StableDiffusionXLBackend(Backend):
    family = "sdxl"
    pipeline_class = "StableDiffusionXLPipeline"

    def __init__(self, pipe, *folder):
        super().__init__(pipe, *folder)
        if pipe.vae.dtype == torch.float16 and pipe.vae.config.force_upcast:
            pipe.vae.to(torch.float32)  # SDXL's VAE overflows in float16; diffusers upcasts it for each decode, we once

    @property
    def tokenizers(self) -> list:
        return [self.pipe.tokenizer, self.pipe.tokenizer_2]

    @property
    def text_encoders(self) -> list:
        return [self.pipe.text_encoder, self.pipe.text_encoder_2]

    def encode(self, texts: list[str]) -> Encoded:
        hidden, _, pooled, _ = self.pipe.encode_prompt(texts, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=False)
        return Encoded(hidden, pooled=pooled)

    def _relaxed(self, layout, text_encoder) -> RelaxedEncoder:
        return RelaxedEncoder(text_encoder, layout, layer="penultimate")

    def combine_relaxed(self, encodings) -> Encoded:
        first, second = encodings
        if first.hidden.shape[1] != second.hidden.shape[1]:
            raise ValueError("the two tokenizers lay the prompt out on different rows")
        pooled = self.pipe.text_encoder_2.text_projection(second.pooled)
        return Encoded(torch.cat([first.hidden, second.hidden], dim=-1), first.presence, pooled)

    def unet_extras(self, cond: Conditioning, height: int, width: int) -> dict:
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=cond.pooled.dtype, device=cond.pooled.device)
        return {"added_cond_kwargs": {"text_embeds": cond.pooled, "time_ids": time_ids.expand(len(cond.pooled), -1)}}
