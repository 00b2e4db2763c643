"""The shortcut text gradient: d(loss)/d(prompt weights) through ONE denoising step.

1. sample up to position `t` of a fresh scheduler's ladder from the seed's noise, without gradient;
2. run one denoiser step with gradient, every part of the guidance;
3. estimate the clean latent from the model input and output at that noise level (any scheduler,
   epsilon, v, sample or flow prediction: see schedulers.py);
4. decode with the VAE, score with the CLIP scorer in torch, spherical loss to the original prompt.
Only one denoiser call, the VAE decoder and CLIP's image tower are on the tape, so memory and time
do not grow with the number of sampling steps. `full_backprop_loss` keeps every step on the tape,
for comparison (benchmarks/shortcut_gradient.py).
"""

from __future__ import annotations

import torch

from dpodiff.backends.base import Backend, Conditioning, GenerationSettings, sample_until, step_generators
from dpodiff.backends.schedulers import gradient_position, initial_scale, noise_levels, step


def one_step_loss(backend: Backend, scorer, scheduler, position: int, latents: torch.Tensor, cond: Conditioning,
                  target: torch.Tensor, settings: GenerationSettings) -> torch.Tensor:
    """The differentiable part: one guided denoiser call, x0 estimate, VAE decode, CLIP loss."""
    sigma = noise_levels(scheduler)[position]
    x0 = backend.guided_x0(scheduler, position, sigma, latents, cond, settings)
    return scorer.loss(backend.decode(x0), target).mean()


def shortcut_loss(backend: Backend, scorer, cond: Conditioning, target: torch.Tensor, noise: torch.Tensor, seed: int,
                  t_index: int, settings: GenerationSettings) -> torch.Tensor:
    """The loss whose gradient reaches the conditioning only through sampling step `t_index` of `settings.steps`."""
    scheduler = backend.scheduler(settings)
    position = gradient_position(scheduler, t_index, settings.steps)
    latents = sample_until(backend, scheduler, cond, noise, position, settings, [seed])
    return one_step_loss(backend, scorer, scheduler, position, latents, cond, target, settings)


def full_backprop_loss(backend: Backend, scorer, cond: Conditioning, target: torch.Tensor, noise: torch.Tensor, seed: int,
                       settings: GenerationSettings) -> torch.Tensor:
    """The same loss after sampling all steps with every one on the tape (memory grows with steps)."""
    scheduler = backend.scheduler(settings)
    latents = noise * initial_scale(scheduler)
    generators = step_generators([seed], (1, *noise.shape[1:]))
    for i in range(len(scheduler.timesteps)):
        _, output = backend.guided_output(scheduler, i, latents, cond, settings)
        latents = step(scheduler, output, i, latents, generators)
    return scorer.loss(backend.decode(latents), target).mean()
