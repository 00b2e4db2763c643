"""Stable Diffusion 3 / 3.5: two CLIP encoders and T5, a joint-attention transformer, flow matching.

The transformer reads one text sequence: both CLIP encoders' penultimate states (concatenated along
features, zero-padded to T5's width) followed by T5's states, padded to the pipeline's
`max_sequence_length`; and a pooled vector, both CLIP encoders' projected pooled outputs. Negative
prompts work through ordinary classifier-free guidance. The model predicts a velocity under
FlowMatchEulerDiscreteScheduler (with its shift); schedulers.py turns it into x0. For a relaxed prompt,
absent rows are left out of the joint attention by a bias on the text keys (joint_attention.py).
"""

from __future__ import annotations

import torch

from dpodiff.backends.base import Backend, Conditioning, Encoded
from dpodiff.backends.joint_attention import TextKeyBias
from dpodiff.backends.relaxed import RelaxedEncoder, key_bias
from dpodiff.backends.relaxed_t5 import with_t5
from dpodiff.backends.schedulers import resolution_shift

MAX_SEQUENCE_LENGTH = 256  # the pipeline's default T5 window


class StableDiffusion3Backend(Backend):
    family = "sd3"
    pipeline_class = "StableDiffusion3Pipeline"
    denoiser_name = "transformer"
    max_sequence_length = MAX_SEQUENCE_LENGTH
    family_settings = {"steps": 28, "guidance": 7.0}  # StableDiffusion3Pipeline's defaults

    def __init__(self, pipe, *folder):
        super().__init__(pipe, *folder)
        pipe.transformer.set_attn_processor({name: TextKeyBias(p) for name, p in pipe.transformer.attn_processors.items()})

    @property
    def tokenizers(self) -> list:
        return [self.pipe.tokenizer, self.pipe.tokenizer_2]  # T5 reads up to max_sequence_length, more than CLIP's 77

    @property
    def text_encoders(self) -> list:
        return [self.pipe.text_encoder, self.pipe.text_encoder_2]

    @property
    def modules(self) -> list[torch.nn.Module]:
        return [*super().modules, self.pipe.text_encoder_3]

    def encode(self, texts: list[str]) -> Encoded:
        hidden, _, pooled, _ = self.pipe.encode_prompt(texts, None, None, device=self.device, num_images_per_prompt=1,
                                                       do_classifier_free_guidance=False, max_sequence_length=self.max_sequence_length)
        return Encoded(hidden, pooled=pooled)

    def relaxed_encoders(self, space, positive: bool, negative: bool, negative_mode: str = "cfg"):
        return with_t5(super().relaxed_encoders(space, positive, negative, negative_mode), space, positive, negative,
                       self.pipe.text_encoder_3, self.pipe.tokenizer_3, self.max_sequence_length)

    def _relaxed(self, layout, text_encoder) -> RelaxedEncoder:
        return RelaxedEncoder(text_encoder, layout, layer="penultimate")

    def combine_relaxed(self, encodings) -> Encoded:
        first, second, t5 = encodings
        if first.hidden.shape[1] != second.hidden.shape[1]:
            raise ValueError("the two CLIP tokenizers lay the prompt out on different rows")
        clip = torch.cat([first.hidden, second.hidden], dim=-1)
        clip = torch.nn.functional.pad(clip, (0, t5.hidden.shape[-1] - clip.shape[-1]))
        pooled = torch.cat([self.pipe.text_encoder.text_projection(first.pooled), self.pipe.text_encoder_2.text_projection(second.pooled)], -1)
        return Encoded(torch.cat([clip, t5.hidden], 1), torch.cat([first.presence, t5.presence], 1), pooled)

    def timestep_options(self, settings) -> dict:
        """A scheduler config with `use_dynamic_shifting` shifts by the image's token count, as the pipeline does."""
        config = self.own_scheduler.config
        if not config.get("use_dynamic_shifting"):
            return {}
        _, _, height, width = self.latent_shape(settings.height, settings.width)
        tokens = (height // self.denoiser.config.patch_size) * (width // self.denoiser.config.patch_size)
        return {"mu": resolution_shift(config, tokens, max_shift=1.16)}  # StableDiffusion3Pipeline's default

    def denoise(self, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning, settings) -> torch.Tensor:
        extra = {} if cond.presence is None else {"joint_attention_kwargs": {"attention_mask": key_bias(cond.presence)}}
        return self.pipe.transformer(hidden_states=latents, timestep=t.expand(len(latents)), encoder_hidden_states=cond.context,
                                     pooled_projections=cond.pooled, **extra).sample
