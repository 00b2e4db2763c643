"""Flux (FluxPipeline): T5 states and CLIP's pooled output, a guidance-distilled MMDiT on packed latents, flow matching.

Flux-dev was distilled to follow an embedded guidance value (`--guidance`, diffusers' `guidance_scale`,
3.5 by default) and has no negative prompt of its own. Negative prompts work through true
classifier-free guidance as diffusers implements it (`true_cfg_scale` with `negative_prompt`): two
transformer calls per step, combined with `--true-cfg` (DEFAULT_TRUE_CFG unless given). dpodiff uses
it for every image of a run, the empty negative prompt included, so the original prompt and every
candidate are drawn alike; `--true-cfg 1` is diffusers' default, where a negative prompt does nothing.

Latents stay [B, C, H, W] in dpodiff's sampling loop (the flow-matching Euler step is elementwise);
`denoise` packs them into Flux's 2x2 patches and unpacks its output. A relaxed prompt's absent T5 rows
are left out of every attention (text comes first in Flux's joint and single-stream blocks) through
the attention mask diffusers' Flux processor accepts.
"""

from __future__ import annotations

import numpy as np
import torch

from dpodiff.backends.base import Backend, Conditioning, Encoded
from dpodiff.backends.relaxed import key_bias
from dpodiff.backends.relaxed_t5 import with_t5
from dpodiff.backends.schedulers import resolution_shift

DEFAULT_TRUE_CFG = 4.0  # true CFG scale when --true-cfg is not given
MAX_SEQUENCE_LENGTH = 512  # the pipeline's default T5 window (Flux-schnell was trained with 256)


class FluxBackend(Backend):
    family = "flux"
    pipeline_class = "FluxPipeline"
    denoiser_name = "transformer"
    distilled_guidance = True
    max_sequence_length = MAX_SEQUENCE_LENGTH
    family_settings = {"steps": 28, "guidance": 3.5}  # FluxPipeline's defaults (Flux-dev)

    @property
    def native_size(self) -> int:
        return int(self.pipe.vae.config.sample_size)  # the transformer has no size of its own; Flux's VAE says 1024

    @property
    def modules(self) -> list[torch.nn.Module]:
        return [*super().modules, self.pipe.text_encoder_2]

    @property
    def size_multiple(self) -> int:
        return int(self.pipe.vae_scale_factor) * 2  # latents packed in 2x2 patches around each transformer call

    def latent_shape(self, height: int | None = None, width: int | None = None) -> tuple[int, ...]:
        """Unpacked latents as the pipeline draws them: a quarter of the packed channels, sides a multiple of 2."""
        scale = self.pipe.vae_scale_factor * 2
        return (1, self.denoiser.config.in_channels // 4, 2 * ((height or self.native_size) // scale), 2 * ((width or self.native_size) // scale))

    def guidance_scale(self, settings) -> float:
        return DEFAULT_TRUE_CFG if settings.true_cfg is None else settings.true_cfg

    def timestep_options(self, settings) -> dict:
        """The pipeline's schedule: sigmas from 1 to 1/steps, shifted by the image's token count."""
        config = self.own_scheduler.config
        _, _, height, width = self.latent_shape(settings.height, settings.width)
        mu = resolution_shift(config, (height // 2) * (width // 2))
        sigmas = None if config.get("use_flow_sigmas") else np.linspace(1.0, 1 / settings.steps, settings.steps)
        return {"sigmas": sigmas, "mu": mu}

    def encode(self, texts: list[str]) -> Encoded:
        hidden, pooled, _ = self.pipe.encode_prompt(texts, None, device=self.device, num_images_per_prompt=1,
                                                    max_sequence_length=self.max_sequence_length)
        return Encoded(hidden, pooled=pooled)

    def relaxed_encoders(self, space, positive: bool, negative: bool, negative_mode: str = "cfg"):
        return with_t5(super().relaxed_encoders(space, positive, negative, negative_mode), space, positive, negative,  # CLIP: pooled
                       self.pipe.text_encoder_2, self.pipe.tokenizer_2, self.max_sequence_length)

    def combine_relaxed(self, encodings) -> Encoded:
        clip, t5 = encodings
        return Encoded(t5.hidden, t5.presence, clip.pooled)

    def denoise(self, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning, settings) -> torch.Tensor:
        from diffusers import FluxPipeline

        n, channels, height, width = latents.shape
        packed = FluxPipeline._pack_latents(latents, n, channels, height, width)
        text_ids = latents.new_zeros(cond.context.shape[1], 3)
        image_ids = FluxPipeline._prepare_latent_image_ids(n, height // 2, width // 2, latents.device, latents.dtype)
        guidance = torch.full((n,), settings.guidance, device=latents.device, dtype=torch.float32) if self.denoiser.config.guidance_embeds else None
        extra = {}
        if cond.presence is not None:  # text rows first, then the image's; absent text rows are never attended to
            bias = torch.cat([key_bias(cond.presence), cond.presence.new_zeros(n, packed.shape[1])], 1)
            extra["joint_attention_kwargs"] = {"attention_mask": bias[:, None, None, :].to(latents.dtype)}
        out = self.pipe.transformer(hidden_states=packed, timestep=t.expand(n).to(latents.dtype) / 1000, guidance=guidance,
                                    pooled_projections=cond.pooled, encoder_hidden_states=cond.context, txt_ids=text_ids,
                                    img_ids=image_ids, **extra).sample
        return out.view(n, height // 2, width // 2, channels, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(n, channels, height, width)
