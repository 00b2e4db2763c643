"""Scheduler arithmetic for sampling and the shortcut gradient, for any diffusers scheduler.

Variance-preserving models (SD 1.x/2.x, SDXL): every scheduler a user may set (DDIM, PNDM, Euler, Euler ancestral, DPMSolver, UniPC, LMS, Heun)
walks down a ladder of noise levels. Whatever its own latent convention (alpha-based ones keep
x = a * x0 + s * eps, sigma-based ones keep x = x0 + sigma * eps and rescale it in
`scale_model_input`), the UNet always sees the variance-preserving input
x_in = a * x0 + s * eps with a = 1 / sqrt(1 + sigma^2) and s = sigma * a. So the clean-latent
estimate needs only the noise level sigma at the current position of the ladder and the model's
prediction type, and it is taken from the model input, never from the scheduler's private state.

Flow-matching models (SD3, Flux): the model reads x_t = (1 - sigma) x0 + sigma * noise unscaled and
predicts the velocity v = noise - x0, so x0 = x_t - sigma * v (prediction type "flow").

The pipeline's own scheduler is never stepped or replaced: each sampling run takes a fresh instance
built from its config.
"""

from __future__ import annotations

import inspect

import torch

from dpodiff.defaults import SCHEDULERS, check_scheduler_name

FLOW_MATCHING = "FlowMatch"  # the prefix of diffusers' flow-matching scheduler classes


def scheduler_name(scheduler) -> str:
    """The CLI name of a scheduler instance, or its class name when it is not one of ours."""
    cls = type(scheduler).__name__
    return next((e.name for e in SCHEDULERS.values() if e.target == f"diffusers:{cls}"), cls)


def fresh_scheduler(scheduler, steps: int, device: torch.device | str | None = None, name: str | None = None, **timesteps):
    """A new scheduler with its timesteps set (sampling mutates state): of the same class and config, or of the
    kind `name` (a CLI name) built from that config. `timesteps` go to set_timesteps (Flux: its shift `mu`)."""
    cls = type(scheduler)
    if check_scheduler_name(name) is not None:
        cls = SCHEDULERS[name].load()
    fresh = cls.from_config(scheduler.config)
    fresh.set_timesteps(steps, device=device, **timesteps)
    return fresh


def is_flow_matching(scheduler) -> bool:
    return type(scheduler).__name__.startswith(FLOW_MATCHING)


def prediction_type(scheduler) -> str:
    """What the model predicts under this scheduler: epsilon, v_prediction, sample, or flow (a velocity)."""
    return "flow" if is_flow_matching(scheduler) else scheduler.config.prediction_type


def scale_model_input(scheduler, latents: torch.Tensor, t) -> torch.Tensor:
    """The denoiser's input: flow-matching schedulers feed the latents as they are."""
    return latents if is_flow_matching(scheduler) else scheduler.scale_model_input(latents, t)


def resolution_shift(config, image_tokens: int, max_shift: float = 1.15) -> float:
    """The flow-matching shift `mu` a pipeline computes from the image's token count (dynamic shifting), with the
    scheduler config's bounds; `max_shift` is the pipeline's own default when the config names none."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    return calculate_shift(image_tokens, config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
                           config.get("base_shift", 0.5), config.get("max_shift", max_shift))


def initial_scale(scheduler) -> float:
    """The initial noise's scale (sigma-based schedulers start at sigma_max; flow matching at 1)."""
    return getattr(scheduler, "init_noise_sigma", 1.0)


def gradient_position(scheduler, t_index: int, steps: int) -> int:
    """Position in `scheduler.timesteps` of sampling step `t_index` of `steps`.

    Second-order and PLMS schedulers list more timesteps than sampling steps (Heun 2n - 1,
    PNDM with Runge-Kutta warm-up n + 9); the step maps to the same fraction of the ladder.
    """
    n = len(scheduler.timesteps)
    return min(n - 1, t_index * n // steps)


def step(scheduler, output: torch.Tensor, position: int, latents: torch.Tensor, generator) -> torch.Tensor:
    """One sampling step; the generator (or one per image) goes to the schedulers that draw noise (ancestral, DDIM with eta)."""
    takes_generator = "generator" in inspect.signature(scheduler.step).parameters
    extra = {"generator": generator} if takes_generator else {}
    return scheduler.step(output, scheduler.timesteps[position], latents, **extra).prev_sample


def noise_levels(scheduler) -> list[float]:
    """sigma at every position of `scheduler.timesteps`, computed on the CPU (no device sync)."""
    sigmas = getattr(scheduler, "sigmas", None)
    if sigmas is not None and len(sigmas) >= len(scheduler.timesteps):
        return torch.as_tensor(sigmas[: len(scheduler.timesteps)]).detach().to("cpu", torch.float64).tolist()
    cpu = scheduler if scheduler.timesteps.device.type == "cpu" else fresh_scheduler(scheduler, scheduler.num_inference_steps)
    alphas_cumprod = cpu.alphas_cumprod.to("cpu", torch.float64)[cpu.timesteps.long()]
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt().tolist()


def clean_latent(prediction_type: str, model_input: torch.Tensor, output: torch.Tensor, sigma: float) -> torch.Tensor:
    """x0 from the model input and the model's output at noise level sigma."""
    if prediction_type == "flow":
        return model_input - sigma * output
    a = (1 + sigma**2) ** -0.5
    s = sigma * a
    if prediction_type == "epsilon":
        return (model_input - s * output) / a
    if prediction_type == "v_prediction":
        return a * model_input - s * output
    if prediction_type == "sample":
        return output
    raise ValueError(f"prediction type {prediction_type!r} is not supported")
