"""The shortcut text gradient: d(loss)/d(prompt weights) through ONE denoising step.

1. sample `t` steps from the seed's noise without gradient;
2. run one UNet step with gradient, both halves of classifier-free guidance;
3. estimate the clean latent directly from the noisy one (epsilon, v or sample prediction);
4. decode with the VAE, preprocess for CLIP in torch, spherical loss to the original prompt.
Only one UNet call, the VAE decoder and CLIP's image tower are on the tape, so memory and time
do not grow with the number of sampling steps. `full_backprop_loss` keeps every step on the tape,
for comparison (benchmarks/shortcut_gradient.py).
"""

from __future__ import annotations

import copy

import torch

from dpodiff.backends.relaxed import pad_rows, unet_mask
from dpodiff.backends.stable_diffusion import native_size, seed_generator
from dpodiff.objectives.clip_loss import ClipScorer, spherical_distance


def initial_latents(pipe, seed: int, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """The same initial noise the pipeline draws for this seed (drawn on the CPU)."""
    size = native_size(pipe)
    scale = pipe.vae_scale_factor
    shape = (1, pipe.unet.config.in_channels, (height or size) // scale, (width or size) // scale)
    noise = torch.randn(shape, generator=seed_generator(seed), dtype=torch.float32)
    return noise.to(pipe.unet.device, pipe.unet.dtype)


def _guided_noise(pipe, latents, t, context, mask, guidance: float) -> torch.Tensor:
    """One classifier-free-guided prediction; context/mask hold [negative, positive]."""
    model_in = pipe.scheduler.scale_model_input(torch.cat([latents] * 2), t)
    out = pipe.unet(model_in, t, encoder_hidden_states=context, encoder_attention_mask=mask).sample
    uncond, cond = out.chunk(2)
    return uncond + guidance * (cond - uncond)


def clean_latent(scheduler, x_t: torch.Tensor, prediction: torch.Tensor, t) -> torch.Tensor:
    """x0 estimated from x_t and the model output with the forward-process identity."""
    alpha_bar = scheduler.alphas_cumprod.to(x_t.device, torch.float64)[int(t)].to(x_t.dtype)
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return (x_t - (1 - alpha_bar).sqrt() * prediction) / alpha_bar.sqrt()
    if kind == "v_prediction":
        return alpha_bar.sqrt() * x_t - (1 - alpha_bar).sqrt() * prediction
    if kind == "sample":
        return prediction
    raise ValueError(f"prediction type {kind!r} is not supported")


def decode_loss(pipe, scorer: ClipScorer, x0: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Spherical CLIP loss of the decoded latent to the target text embedding, differentiably."""
    image = pipe.vae.decode(x0 / pipe.vae.config.scaling_factor).sample
    clip_dtype = next(scorer.model.parameters()).dtype
    pixels = ((image.to(clip_dtype) + 1) / 2).clamp(0, 1)
    features = scorer.model.get_image_features(pixel_values=scorer.preprocess(pixels))
    features = features if isinstance(features, torch.Tensor) else features.pooler_output
    at_least_float32 = torch.promote_types(features.dtype, torch.float32)  # float16 models: loss in float32
    return spherical_distance(features.to(at_least_float32), target.to(at_least_float32)).mean()


def context_and_mask(negative, positive):
    """Negative and positive encodings as one CFG batch, padded to a common length, with the UNet mask."""
    (neg_h, neg_k), (pos_h, pos_k) = negative, positive
    rows = max(neg_h.shape[1], pos_h.shape[1])
    neg_h, neg_k = pad_rows(neg_h, neg_k, rows)
    pos_h, pos_k = pad_rows(pos_h, pos_k, rows)
    return torch.cat([neg_h, pos_h]), unet_mask(torch.cat([neg_k, pos_k]))


def sample_until(pipe, scheduler, context, mask, seed: int, t_index: int, guidance: float,
                 height: int | None = None, width: int | None = None) -> torch.Tensor:
    """x_t after `t_index` sampling steps from the seed's noise, without gradient."""
    latents = initial_latents(pipe, seed, height, width) * scheduler.init_noise_sigma
    with torch.no_grad():
        for t in scheduler.timesteps[:t_index]:
            eps = _guided_noise(pipe, latents, t, context.detach(), mask.detach(), guidance)
            latents = scheduler.step(eps, t, latents).prev_sample
    return latents


def one_step_loss(pipe, scorer: ClipScorer, scheduler, latents, t, context, mask, target, guidance: float) -> torch.Tensor:
    """The differentiable part: one guided UNet call at t, x0 estimate, VAE decode, CLIP loss."""
    eps = _guided_noise(pipe, latents, t, context, mask, guidance)
    return decode_loss(pipe, scorer, clean_latent(scheduler, latents, eps, t), target)


def timesteps(pipe, steps: int):
    scheduler = copy.deepcopy(pipe.scheduler)  # set_timesteps mutates; leave the pipeline's alone
    scheduler.set_timesteps(steps, device=pipe.unet.device)
    return scheduler


def shortcut_loss(pipe, scorer: ClipScorer, negative, positive, target: torch.Tensor, seed: int, t_index: int,
                  steps: int, guidance: float, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """The loss whose gradient reaches the (hidden, presence) encodings only through step `t_index`."""
    scheduler = timesteps(pipe, steps)
    context, mask = context_and_mask(negative, positive)
    latents = sample_until(pipe, scheduler, context, mask, seed, t_index, guidance, height, width)
    return one_step_loss(pipe, scorer, scheduler, latents, scheduler.timesteps[t_index], context, mask, target, guidance)


def full_backprop_loss(pipe, scorer: ClipScorer, negative, positive, target: torch.Tensor, seed: int,
                       steps: int, guidance: float, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """The same loss after sampling all `steps` steps with every one on the tape (memory grows with steps)."""
    scheduler = timesteps(pipe, steps)
    context, mask = context_and_mask(negative, positive)
    latents = initial_latents(pipe, seed, height, width) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        eps = _guided_noise(pipe, latents, t, context, mask, guidance)
        latents = scheduler.step(eps, t, latents).prev_sample
    return decode_loss(pipe, scorer, latents, target)
