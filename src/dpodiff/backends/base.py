"""The backend protocol: what dpodiff needs from a loaded text-to-image model.

A backend wraps one diffusers pipeline's modules and can
  (a) generate images for a batch of requests, as tensors on the model's device,
  (b) encode discrete prompts,
  (c) encode relaxed prompts (weighted mixes of choices, for GPO),
  (d) take one guided denoiser step with gradient and return the clean-latent estimate,
  (e) tell its token window and native image size.
A model family (SD 1.x/2.x, SDXL, SD3, ...) is one subclass in its own file; it supplies the text
encoders and the denoiser call (a UNet or a transformer, with what it reads besides the text states).
The noise arithmetic (variance-preserving or flow matching) lives in schedulers.py, keyed by the
scheduler. Every sampling run builds its own scheduler from the settings (the pipeline's scheduler is
only the template), and every image is sampled by one loop (`sample`), the same for black-box search,
generation and the shortcut gradient; what the model folder says about itself is read by the loader.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from dpodiff.backends.guidance import guide, parts
from dpodiff.backends.memory import MemoryBudget
from dpodiff.backends.relaxed import RelaxedEncoder, negative_layout, pad_rows, positive_layout, unet_mask
from dpodiff.backends.schedulers import (clean_latent, fresh_scheduler, initial_scale, is_flow_matching, prediction_type,
                                         scale_model_input, scheduler_name, step)
from dpodiff.defaults import DEFAULT_GUIDANCE, DEFAULT_STEPS, check_negative_mode
from dpodiff.display import shown
from dpodiff.errors import UsageError


@dataclass(frozen=True)
class GenerationSettings:
    """What one sampling run is told: RunConfig.generation() makes them from a resolved config."""

    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    height: int | None = None  # None: the model's native size
    width: int | None = None
    batch_size: int | None = None  # images per pipeline call; None: all images of a request list at once
    negative_mode: str = "cfg"  # how the negative prompt steers: cfg or perp (Perp-Neg), see guidance.py
    scheduler: str | None = None  # a CLI name (registry.SCHEDULERS); None: the model's own
    true_cfg: float | None = None  # guidance-distilled families (Flux): the scale of true CFG; None: the family's default


@dataclass(frozen=True)
class Request:
    """One image to make: a positive prompt, a negative prompt and the seed of its initial noise."""

    prompt: str
    negative_prompt: str
    seed: int


@dataclass
class Encoded:
    """Text encodings of a batch of prompts: the states the UNet reads, and what else the family needs."""

    hidden: torch.Tensor  # [N, rows, D]
    presence: torch.Tensor | None = None  # [N, rows]: relaxed prompts only; None means every row is present
    pooled: torch.Tensor | None = None  # [N, P]: families whose UNet reads a pooled text embedding (SDXL)

    def rows(self, index) -> "Encoded":
        """The encodings of the prompts at `index` (a list or tensor of rows)."""
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return Encoded(self.hidden[index], pick(self.presence), pick(self.pooled))


@dataclass
class Conditioning:
    """A guidance batch: the negative encodings, then the positive ones, then (Perp-Neg) the empty prompt's."""

    context: torch.Tensor
    presence: torch.Tensor | None = None  # [N, rows] for relaxed prompts (relaxed.py); None: every row is present
    pooled: torch.Tensor | None = None
    negative_mode: str = "cfg"

    @property
    def mask(self) -> torch.Tensor | None:
        """The UNet's encoder_attention_mask: absent rows are skipped."""
        return None if self.presence is None else unet_mask(self.presence)

    @classmethod
    def guided(cls, negative: Encoded, positive: Encoded, empty: Encoded | None = None) -> "Conditioning":
        """cfg from a negative and a positive batch; perp when the empty prompt's encoding (one row or a batch) is given."""
        encoded = [negative, positive] if empty is None else [negative, positive, _expanded(empty, len(positive.hidden))]
        rows = max(e.hidden.shape[1] for e in encoded)
        padded = [pad_rows(e.hidden, e.presence if e.presence is not None else e.hidden.new_ones(e.hidden.shape[:2]), rows)
                  for e in encoded]
        relaxed = any(e.presence is not None for e in encoded)
        pooled = None if positive.pooled is None else torch.cat([e.pooled for e in encoded])
        return cls(torch.cat([h for h, _ in padded]), torch.cat([p for _, p in padded]) if relaxed else None, pooled,
                   "cfg" if empty is None else "perp")

    def positive_half(self) -> "Conditioning":
        """The positive prompts of a cfg batch (its second half)."""
        half = lambda t: None if t is None else t[len(t) // 2 :]  # noqa: E731
        return replace(self, context=half(self.context), presence=half(self.presence), pooled=half(self.pooled))

    def detach(self) -> "Conditioning":
        return replace(self, **{k: v.detach() for k, v in vars(self).items() if isinstance(v, torch.Tensor)})


def _expanded(encoded: Encoded, n: int) -> Encoded:
    """One prompt's encoding repeated for a batch of n."""
    grow = lambda t: None if t is None else t.expand(n, *t.shape[1:])  # noqa: E731
    return Encoded(grow(encoded.hidden), grow(encoded.presence), grow(encoded.pooled))


class Backend:
    """One loaded model. Subclasses set `family`, `pipeline_class`, and the encoders; a family whose
    denoiser is not `pipe.unet` overrides `denoiser_name` and `denoise`."""

    family: ClassVar[str] = ""
    pipeline_class: ClassVar[str] = ""  # the diffusers class named in model_index.json
    denoiser_name: ClassVar[str] = "unet"  # the pipeline component that predicts noise (or velocity)
    distilled_guidance: ClassVar[bool] = False  # --guidance is embedded (Flux); negatives steer through --true-cfg
    family_settings: ClassVar[dict] = {}  # the pipeline's own defaults (steps, guidance), where the model's folder recommends none

    def __init__(self, pipe, recommended=None, negative_library=None):
        """`recommended` and `negative_library` are what the model's folder says (models.py reads them)."""
        from dpodiff.model_folder import Recommended

        self.pipe = pipe
        self.own_scheduler = pipe.scheduler  # the model's own: the template of every run's scheduler, never stepped
        self.vae_name: str | None = None  # a VAE given instead of the model's own (--vae)
        self.recommended = self.with_family_settings(recommended or Recommended())
        self.negative_library = negative_library  # None: the generic library
        self.memory = MemoryBudget()  # images per sampling run that fit the device, learnt as runs go

    @classmethod
    def with_family_settings(cls, recommended):
        """The folder's recommendation, with the family's pipeline defaults where it names none."""
        return replace(recommended, **{k: v for k, v in cls.family_settings.items() if getattr(recommended, k) is None})

    # -- (e) what the model reads and draws -------------------------------------------
    @property
    def tokenizers(self) -> list:
        return [self.pipe.tokenizer]

    @property
    def tokenizer(self):
        return self.tokenizers[0]

    @property
    def token_window(self) -> int:
        """Tokens a prompt may have, start and end tokens included (the smallest of the encoders' windows)."""
        return min(int(t.model_max_length) for t in self.tokenizers)

    @property
    def denoiser(self) -> torch.nn.Module:
        return getattr(self.pipe, self.denoiser_name)

    @property
    def native_size(self) -> int:
        return int(self.denoiser.config.sample_size) * int(self.pipe.vae_scale_factor)

    @property
    def size_multiple(self) -> int:
        """Pixels per latent cell the denoiser reads: the VAE's factor (transformers' patches multiply it)."""
        return int(self.pipe.vae_scale_factor) * int(getattr(self.denoiser.config, "patch_size", None) or 1)

    def check_size(self, height: int | None, width: int | None) -> None:
        """Image sides the model draws exactly: a side it would round down is refused, not changed silently."""
        for option, side in (("--height", height), ("--width", width)):
            if side is not None and side % self.size_multiple:
                near = max(self.size_multiple, side // self.size_multiple * self.size_multiple)
                raise UsageError(f"{option} {side} is not a multiple of {self.size_multiple}, the pixels per latent patch of this "
                                 f"{self.family} model; use {near} or {near + self.size_multiple}.")

    @property
    def device(self) -> torch.device:
        return self.denoiser.device

    @property
    def dtype(self) -> torch.dtype:
        return self.denoiser.dtype

    @property
    def modules(self) -> list[torch.nn.Module]:
        return [self.denoiser, self.pipe.vae, *self.text_encoders]

    @property
    def text_encoders(self) -> list:
        return [self.pipe.text_encoder]

    @contextmanager
    def checkpointed(self, enabled: bool = True):
        """Gradient checkpointing in the denoiser's and the VAE's blocks while GPO's loss is differentiated: each
        block keeps only its input and recomputes its activations in the backward pass (the same gradient, for
        about one more forward pass). Sampling without gradient is unchanged: diffusers checkpoints only where
        autograd records."""
        modules = [m for m in (self.denoiser, self.pipe.vae) if enabled and getattr(m, "_supports_gradient_checkpointing", False)]
        for module in modules:
            module.enable_gradient_checkpointing()
        try:
            yield
        finally:
            for module in modules:
                module.disable_gradient_checkpointing()

    def describe(self, settings: GenerationSettings | None = None) -> dict:
        """What result files record about the model's generation set-up under a run's settings."""
        settings = settings or GenerationSettings()
        described = {"family": self.family, "scheduler": settings.scheduler or scheduler_name(self.own_scheduler),
                     "token_window": self.token_window, "dtype": str(self.dtype).removeprefix("torch.")}
        if self.distilled_guidance:
            described["true_cfg"] = self.guidance_scale(settings)
        return described | ({"vae": self.vae_name} if self.vae_name else {})

    def check_window(self, texts: list[str], what: str = "prompt") -> None:
        """Every text must fit the window as it is: the tokenizer would cut it silently."""
        for text in dict.fromkeys(texts):
            n = len(self.tokenizer(text, truncation=False).input_ids)
            if n > self.token_window:
                raise UsageError(f"The {what} {shown(text)!r} is {n - 2} tokens long, but the "
                                 f"text encoder reads at most {self.token_window - 2} (plus start and end tokens); shorten it.")

    # -- (b) and (c) text -------------------------------------------------------------
    def encode(self, texts: list[str]) -> Encoded:
        raise NotImplementedError

    def relaxed_encoders(self, space, positive: bool, negative: bool, negative_mode: str = "cfg") -> "RelaxedPrompt":
        """Relaxed encoders of the searched parts of `space` (an unsearched part is its fixed text)."""
        from dpodiff.spaces import SearchSpace

        fixed = SearchSpace(space.prompt)
        empty = None
        if check_negative_mode(negative_mode) == "perp":
            with torch.no_grad():
                empty = self.encode([""])
        return RelaxedPrompt(self, [self._relaxed(positive_layout(space if positive else fixed, t), e) for t, e in self._pairs()],
                             [self._relaxed(negative_layout(space if negative else fixed, t), e) for t, e in self._pairs()],
                             lambda genes: space.split(genes, positive, negative), empty)

    def _pairs(self):
        return list(zip(self.tokenizers, self.text_encoders))

    def _relaxed(self, layout, text_encoder) -> RelaxedEncoder:
        return RelaxedEncoder(text_encoder, layout)

    def combine_relaxed(self, encodings) -> Encoded:
        """One Encoded from the relaxed encodings of each text encoder (one encoder: itself)."""
        (only,) = encodings
        return Encoded(only.hidden, only.presence)

    # -- (d) one guided step -----------------------------------------------------------
    def scheduler(self, settings: GenerationSettings):
        """A fresh scheduler for one sampling run, its timesteps set: the settings' kind built from the model's
        own config, or the model's own kind."""
        if settings.scheduler is not None and is_flow_matching(self.own_scheduler):
            raise UsageError(f"--scheduler {settings.scheduler} is a sampler for noise-prediction models, but this {self.family} model "
                             f"samples by flow matching ({type(self.own_scheduler).__name__}); leave --scheduler out.")
        return fresh_scheduler(self.own_scheduler, settings.steps, self.device, settings.scheduler, **self.timestep_options(settings))

    def timestep_options(self, settings: GenerationSettings) -> dict:
        """What the family's pipeline passes to set_timesteps besides the steps (Flux: the resolution-dependent shift)."""
        return {}

    def unet_extras(self, cond: Conditioning, height: int, width: int) -> dict:
        """What the family's UNet reads besides the text states (SDXL: pooled text and size ids)."""
        return {}

    def guidance_scale(self, settings: GenerationSettings) -> float:
        """The scale that combines the negative and the positive prediction (guidance.py)."""
        return settings.guidance

    def denoise(self, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning, settings: GenerationSettings) -> torch.Tensor:
        """The denoiser's output for a batch of model inputs under a conditioning batch of the same size."""
        height, width = (s * self.pipe.vae_scale_factor for s in latents.shape[-2:])
        return self.pipe.unet(latents, t, encoder_hidden_states=cond.context, encoder_attention_mask=cond.mask,
                              **self.unet_extras(cond, height, width)).sample

    def guided_x0(self, scheduler, position: int, sigma: float, latents: torch.Tensor, cond: Conditioning,
                  settings: GenerationSettings) -> torch.Tensor:
        """x0 estimated from one guided denoiser call at `position` of the scheduler's ladder."""
        model_input, output = self.guided_output(scheduler, position, latents, cond, settings)
        return clean_latent(prediction_type(scheduler), model_input, output, sigma)

    def guided_output(self, scheduler, position: int, latents: torch.Tensor, cond: Conditioning, settings: GenerationSettings):
        """(model input, guided model output) for latents [B, ...] and a 2B (cfg) or 3B (perp) conditioning batch."""
        t = scheduler.timesteps[position]
        model_input = scale_model_input(scheduler, latents, t)
        scale = self.guidance_scale(settings)
        if cond.negative_mode == "cfg" and scale == 1:  # e_neg + 1 (e_pos - e_neg) is e_pos: one call, as diffusers makes
            return model_input, self.denoise(model_input, t, cond.positive_half(), settings)
        out = self.denoise(torch.cat([model_input] * parts(cond.negative_mode)), t, cond, settings)
        return model_input, guide(out, scale, cond.negative_mode)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] from latents, differentiably, in the VAE's dtype (a family whose VAE overflows
        in float16 keeps it in float32, see sdxl.py)."""
        vae = self.pipe.vae
        mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:  # VAEs that normalise their latents per channel
            shape = (1, len(mean), 1, 1)
            latents = latents * torch.tensor(std, device=latents.device).view(shape) + torch.tensor(mean, device=latents.device).view(shape) * vae.config.scaling_factor
        shift = getattr(vae.config, "shift_factor", None) or 0.0  # SD3's and Flux's VAEs shift their latents too
        image = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor + shift).sample
        return ((image.to(torch.promote_types(image.dtype, torch.float32)) + 1) / 2).clamp(0, 1)

    def latent_shape(self, height: int | None = None, width: int | None = None) -> tuple[int, ...]:
        """The shape of one image's initial noise, as the pipeline draws it."""
        scale = self.pipe.vae_scale_factor
        return (1, self.denoiser.config.in_channels, (height or self.native_size) // scale, (width or self.native_size) // scale)

    def initial_noise(self, seed: int, height: int | None = None, width: int | None = None) -> torch.Tensor:
        """The pipeline's initial noise for this seed: drawn on the CPU, then moved once."""
        noise = torch.randn(self.latent_shape(height, width), generator=seed_generator(seed), dtype=torch.float32)
        return noise.to(self.device, self.dtype)

    # -- (a) images --------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, requests: list[Request], settings: GenerationSettings) -> torch.Tensor:
        """Images [N, 3, H, W] in [0, 1] (float32 or wider) on the model's device, in request order; `settings.batch_size`
        images per sampling run, fewer where the device's memory holds fewer (memory.py: an out-of-memory error halves the
        batch and tries again). Each distinct text is encoded once. Each image depends only on its request (its seed's
        noise, and its seed's generator for samplers that draw noise at each step), as in the diffusers pipelines, whose
        images `sample` reproduces; on the CPU the same requests in the same batches give bit-identical images."""
        perp = check_negative_mode(settings.negative_mode) == "perp"
        texts = list(dict.fromkeys([r.prompt for r in requests] + [r.negative_prompt for r in requests] + [""] * perp))
        self.check_window(texts)
        row = {text: i for i, text in enumerate(texts)}
        encoded = self.encode(texts)
        per_call = settings.batch_size or len(requests)
        pixels = (settings.height or self.native_size) * (settings.width or self.native_size)
        images, i = [], 0
        while i < len(requests):
            batch = requests[i : i + self.memory.images(per_call, pixels, self.device)]
            positive = torch.tensor([row[r.prompt] for r in batch], device=self.device)
            negative = torch.tensor([row[r.negative_prompt] for r in batch], device=self.device)
            empty = encoded.rows([row[""]]) if perp else None
            cond = Conditioning.guided(encoded.rows(negative), encoded.rows(positive), empty)
            try:
                with self.memory.measured(self.device, len(batch), pixels):
                    images.append(self.decode(self.sample(cond, [r.seed for r in batch], settings)))  # one decode for every path
            except torch.OutOfMemoryError:
                if len(batch) == 1:
                    raise
            else:
                i += len(batch)
                continue
            self.memory.halve(len(batch))  # out of the except block: the failed run's tensors are freed first
        return torch.cat(images)

    def sample(self, cond: Conditioning, seeds: list[int], settings: GenerationSettings) -> torch.Tensor:
        """Final latents of every sampling step from each seed's initial noise, on a fresh scheduler."""
        scheduler = self.scheduler(settings)
        noise = torch.cat([self.initial_noise(s, settings.height, settings.width) for s in seeds])
        return sample_until(self, scheduler, cond, noise, len(scheduler.timesteps), settings, seeds)


class RelaxedPrompt:
    """The relaxed positive and negative prompts of a space, as one function of the searched genes' weights."""

    def __init__(self, backend: Backend, positive: list[RelaxedEncoder], negative: list[RelaxedEncoder], split,
                 empty: Encoded | None = None):
        self.backend, self.positive, self.negative, self.split = backend, positive, negative, split
        self.empty = empty  # the empty prompt's encoding: Perp-Neg guidance (guidance.py)

    def __call__(self, weights: list[torch.Tensor]) -> Conditioning:
        pos_w, neg_w = self.split(weights)
        positive = self.backend.combine_relaxed([e(pos_w) for e in self.positive])
        negative = self.backend.combine_relaxed([e(neg_w) for e in self.negative])
        return Conditioning.guided(negative, positive, self.empty)


def seed_generator(seed: int) -> torch.Generator:
    """Noise is drawn on the CPU, so a seed gives the same image on every device."""
    return torch.Generator("cpu").manual_seed(int(seed))


def sample_until(backend: Backend, scheduler, cond: Conditioning, noise: torch.Tensor, position: int, settings: GenerationSettings,
                 seeds: list[int] | None = None) -> torch.Tensor:
    """Latents at `position` of the scheduler's ladder after sampling from `noise` (one image per seed), without gradient."""
    latents = noise * initial_scale(scheduler)
    cond = cond.detach()
    generators = step_generators(seeds or [0] * len(noise), (1, *noise.shape[1:]))  # for samplers that add noise at each step
    with torch.no_grad():
        for i in range(position):
            _, output = backend.guided_output(scheduler, i, latents, cond, settings)
            latents = step(scheduler, output, i, latents, generators)
    return latents


def step_generators(seeds: list[int], shape: tuple[int, ...]) -> list[torch.Generator]:
    """Each seed's generator after it drew the initial noise of `shape` (one image's): the state from which a
    pipeline's samplers that add noise at each step (ancestral, SDE) draw it."""
    generators = [seed_generator(s) for s in seeds]
    for generator in generators:
        torch.randn(shape, generator=generator, dtype=torch.float32)
    return generators
