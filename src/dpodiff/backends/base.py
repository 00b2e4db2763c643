"""The backend protocol: what dpodiff needs from a loaded text-to-image model.

A backend wraps one diffusers pipeline and can
  (a) generate images for a batch of requests, as tensors on the model's device,
  (b) encode discrete prompts,
  (c) encode relaxed prompts (weighted mixes of choices, for GPO),
  (d) take one guided UNet step with gradient and return the clean-latent estimate,
  (e) tell its token window and native image size.
A model family (SD 1.x/2.x, SDXL, ...) is one subclass in its own file; it supplies the encoders
and what its UNet reads besides the text states. Scheduler arithmetic lives in schedulers.py and
works on fresh scheduler copies, never the pipeline's own instance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from dpodiff.backends.guidance import guide, parts
from dpodiff.backends.relaxed import RelaxedEncoder, negative_layout, pad_rows, positive_layout, unet_mask
from dpodiff.backends.schedulers import clean_latent, scheduler_name
from dpodiff.defaults import check_negative_mode
from dpodiff.display import shown
from dpodiff.errors import UsageError


@dataclass(frozen=True)
class GenerationSettings:
    steps: int = 50
    guidance: float = 7.5
    height: int | None = None  # None: the model's native size
    width: int | None = None
    batch_size: int | None = None  # images per pipeline call; None: all images of a request list at once
    negative_mode: str = "cfg"  # how the negative prompt steers: cfg or perp (Perp-Neg), see guidance.py


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
    mask: torch.Tensor | None = None  # the UNet's encoder_attention_mask (relaxed prompts)
    pooled: torch.Tensor | None = None
    negative_mode: str = "cfg"

    @classmethod
    def guided(cls, negative: Encoded, positive: Encoded, empty: Encoded | None = None) -> "Conditioning":
        """cfg from a negative and a positive batch; perp when the empty prompt's encoding (one row or a batch) is given."""
        encoded = [negative, positive] if empty is None else [negative, positive, _expanded(empty, len(positive.hidden))]
        rows = max(e.hidden.shape[1] for e in encoded)
        padded = [pad_rows(e.hidden, e.presence if e.presence is not None else e.hidden.new_ones(e.hidden.shape[:2]), rows)
                  for e in encoded]
        relaxed = any(e.presence is not None for e in encoded)
        pooled = None if positive.pooled is None else torch.cat([e.pooled for e in encoded])
        return cls(torch.cat([h for h, _ in padded]), unet_mask(torch.cat([p for _, p in padded])) if relaxed else None, pooled,
                   "cfg" if empty is None else "perp")

    def detach(self) -> "Conditioning":
        return replace(self, **{k: v.detach() for k, v in vars(self).items() if isinstance(v, torch.Tensor)})


def _expanded(encoded: Encoded, n: int) -> Encoded:
    """One prompt's encoding repeated for a batch of n."""
    grow = lambda t: None if t is None else t.expand(n, *t.shape[1:])  # noqa: E731
    return Encoded(grow(encoded.hidden), grow(encoded.presence), grow(encoded.pooled))


class Backend:
    """One loaded model. Subclasses set `family`, `pipeline_class`, and the encoders."""

    family: ClassVar[str] = ""
    pipeline_class: ClassVar[str] = ""  # the diffusers class named in model_index.json

    def __init__(self, pipe):
        from dpodiff.model_folder import pipeline_folder, read_recommended
        from dpodiff.spaces.nplib import model_library

        self.pipe = pipe
        self.vae_name: str | None = None  # a VAE given instead of the model's own (--vae)
        folder = pipeline_folder(pipe)  # what the model's folder says about it (see model_folder.py)
        self.recommended = read_recommended(folder)
        self.negative_library = model_library(folder)  # None: the generic library

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
    def native_size(self) -> int:
        return int(self.pipe.unet.config.sample_size) * int(self.pipe.vae_scale_factor)

    @property
    def device(self) -> torch.device:
        return self.pipe.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.pipe.unet.dtype

    @property
    def modules(self) -> list[torch.nn.Module]:
        return [self.pipe.unet, self.pipe.vae, *self.text_encoders]

    @property
    def text_encoders(self) -> list:
        return [self.pipe.text_encoder]

    def describe(self) -> dict:
        """What result files record about the model's generation set-up."""
        described = {"family": self.family, "scheduler": scheduler_name(self.pipe.scheduler), "token_window": self.token_window,
                     "dtype": str(self.dtype).removeprefix("torch.")}
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
    def unet_extras(self, cond: Conditioning, height: int, width: int) -> dict:
        """What the family's UNet reads besides the text states (SDXL: pooled text and size ids)."""
        return {}

    def guided_x0(self, scheduler, position: int, sigma: float, latents: torch.Tensor, cond: Conditioning,
                  guidance: float) -> torch.Tensor:
        """x0 estimated from one classifier-free-guided UNet call at `position` of the scheduler's ladder."""
        model_input, output = self.guided_output(scheduler, position, latents, cond, guidance)
        return clean_latent(scheduler.config.prediction_type, model_input, output, sigma)

    def guided_output(self, scheduler, position: int, latents: torch.Tensor, cond: Conditioning, guidance: float):
        """(scaled model input, guided model output) for latents [B, C, h, w] and a 2B (cfg) or 3B (perp) conditioning batch."""
        t = scheduler.timesteps[position]
        model_input = scheduler.scale_model_input(latents, t)
        height, width = (s * self.pipe.vae_scale_factor for s in latents.shape[-2:])
        out = self.pipe.unet(torch.cat([model_input] * parts(cond.negative_mode)), t, encoder_hidden_states=cond.context,
                             encoder_attention_mask=cond.mask, **self.unet_extras(cond, height, width)).sample
        return model_input, guide(out, guidance, cond.negative_mode)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] from latents, differentiably, in the VAE's dtype (a family whose VAE overflows
        in float16 keeps it in float32, see sdxl.py)."""
        vae = self.pipe.vae
        mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:  # VAEs that normalise their latents per channel
            shape = (1, len(mean), 1, 1)
            latents = latents * torch.tensor(std, device=latents.device).view(shape) + torch.tensor(mean, device=latents.device).view(shape) * vae.config.scaling_factor
        image = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
        return ((image.to(torch.promote_types(image.dtype, torch.float32)) + 1) / 2).clamp(0, 1)

    def initial_noise(self, seed: int, height: int | None = None, width: int | None = None) -> torch.Tensor:
        """The pipeline's initial noise for this seed: drawn on the CPU, then moved once."""
        scale = self.pipe.vae_scale_factor
        shape = (1, self.pipe.unet.config.in_channels, (height or self.native_size) // scale, (width or self.native_size) // scale)
        noise = torch.randn(shape, generator=seed_generator(seed), dtype=torch.float32)
        return noise.to(self.device, self.dtype)

    # -- (a) images --------------------------------------------------------------------
    def pipeline_embeds(self, encoded: Encoded, positive, negative) -> dict:
        return {"prompt_embeds": encoded.hidden[positive], "negative_prompt_embeds": encoded.hidden[negative]}

    @torch.no_grad()
    def generate(self, requests: list[Request], settings: GenerationSettings) -> torch.Tensor:
        """Images [N, 3, H, W] in [0, 1] (float32 or wider) on the model's device, in request order; `settings.batch_size`
        images per pipeline call. Each distinct text is encoded once. The same requests in the same
        batches give bit-identical images on the CPU."""
        perp = check_negative_mode(settings.negative_mode) == "perp"
        texts = list(dict.fromkeys([r.prompt for r in requests] + [r.negative_prompt for r in requests] + [""] * perp))
        self.check_window(texts)
        row = {text: i for i, text in enumerate(texts)}
        encoded = self.encode(texts)
        step = settings.batch_size or len(requests)
        images = []
        for i in range(0, len(requests), step):
            batch = requests[i : i + step]
            positive = torch.tensor([row[r.prompt] for r in batch], device=self.device)
            negative = torch.tensor([row[r.negative_prompt] for r in batch], device=self.device)
            if perp:  # the pipelines know only cfg: the same steps, by our own loop
                cond = Conditioning.guided(encoded.rows(negative), encoded.rows(positive), encoded.rows([row[""]]))
                images.append(self.decode(self.sample(cond, [r.seed for r in batch], settings)))
                continue
            out = self.pipe(
                **self.pipeline_embeds(encoded, positive, negative),
                generator=[seed_generator(r.seed) for r in batch],
                num_inference_steps=settings.steps,
                guidance_scale=settings.guidance,
                height=settings.height or self.native_size,
                width=settings.width or self.native_size,
                output_type="latent",
            )
            images.append(self.decode(out.images))  # one decode for black-box images and the shortcut alike
        return torch.cat(images)

    def sample(self, cond: Conditioning, seeds: list[int], settings: GenerationSettings) -> torch.Tensor:
        """Final latents of every sampling step from each seed's initial noise, as the pipeline takes them
        (a fresh scheduler; ancestral samplers draw their step noise from the first seed)."""
        from dpodiff.backends.schedulers import fresh_scheduler
        from dpodiff.backends.shortcut import sample_until

        scheduler = fresh_scheduler(self.pipe.scheduler, settings.steps, self.device)
        noise = torch.cat([self.initial_noise(s, settings.height, settings.width) for s in seeds])
        return sample_until(self, scheduler, cond, noise, len(scheduler.timesteps), settings.guidance, seeds[0])


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
