"""The shortcut text gradient: d(loss)/d(prompt weights) through ONE denoising step.

1. sample up to position `t` of a fresh scheduler's ladder from the seed's noise, without gradient;
2. run one UNet step with gradient, both halves of classifier-free guidance;
3. estimate the clean latent from the model input and output at that noise level (any scheduler,
   epsilon, v or sample prediction: see schedulers.py);
4. decode with the VAE, score with the CLIP scorer in torch, spherical loss to the original prompt.
Only one UNet call, the VAE decoder and CLIP's image tower are on the tape, so memory and time
do not grow with the number of sampling steps. `full_backprop_loss` keeps every step on the tape,
for comparison (benchmarks/shortcut_gradient.py).
"""

from __future__ import annotations

import torch

from dpodiff.backends.base import Backend, Conditioning, seed_generator
from dpodiff.backends.schedulers import fresh_scheduler, gradient_position, noise_levels, step


def sample_until(backend: Backend, scheduler, cond: Conditioning, noise: torch.Tensor, position: int, guidance: float,
                 seed: int = 0) -> torch.Tensor:
    """Latents at `position` of the scheduler's ladder after sampling from `noise`, without gradient."""
    latents = noise * scheduler.init_noise_sigma
    cond = cond.detach()
    generator = seed_generator(seed)  # ancestral samplers draw fresh noise at each step
    with torch.no_grad():
        for i in range(position):
            _, output = backend.guided_output(scheduler, i, latents, cond, guidance)
            latents = step(scheduler, output, i, latents, generator)
    return latents


def one_step_loss(backend: Backend, scorer, scheduler, position: int, latents: torch.Tensor, cond: Conditioning,
                  target: torch.Tensor, guidance: float) -> torch.Tensor:
    """The differentiable part: one guided UNet call, x0 estimate, VAE decode, CLIP loss."""
    sigma = noise_levels(scheduler)[position]
    x0 = backend.guided_x0(scheduler, position, sigma, latents, cond, guidance)
    return scorer.loss(backend.decode(x0), target).mean()


def shortcut_loss(backend: Backend, scorer, cond: Conditioning, target: torch.Tensor, noise: torch.Tensor, seed: int,
                  t_index: int, steps: int, guidance: float) -> torch.Tensor:
    """The loss whose gradient reaches the conditioning only through sampling step `t_index` of `steps`."""
    scheduler = fresh_scheduler(backend.pipe.scheduler, steps, backend.device)
    position = gradient_position(scheduler, t_index, steps)
    latents = sample_until(backend, scheduler, cond, noise, position, guidance, seed)
    return one_step_loss(backend, scorer, scheduler, position, latents, cond, target, guidance)


def full_backprop_loss(backend: Backend, scorer, cond: Conditioning, target: torch.Tensor, noise: torch.Tensor, seed: int,
                       steps: int, guidance: float) -> torch.Tensor:
    """The same loss after sampling all `steps` steps with every one on the tape (memory grows with steps)."""
    scheduler = fresh_scheduler(backend.pipe.scheduler, steps, backend.device)
    latents = noise * scheduler.init_noise_sigma
    generator = seed_generator(seed)
    for i in range(len(scheduler.timesteps)):
        _, output = backend.guided_output(scheduler, i, latents, cond, guidance)
        latents = step(scheduler, output, i, latents, generator)
    return scorer.loss(backend.decode(latents), target).mean()
