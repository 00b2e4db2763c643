"""The DPO-Diff objective: spherical CLIP distance between images and the ORIGINAL prompt."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dpodiff.errors import UsageError
from dpodiff.loading import check_local, not_found


def spherical_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d(x, y) = 2 * arcsin(|x^ - y^| / 2)^2 on L2-normalised embeddings (0 = same direction, pi^2/2 = opposite)."""
    x = F.normalize(x, dim=-1)
    y = F.normalize(y, dim=-1)
    return 2 * torch.arcsin((x - y).norm(dim=-1).div(2).clamp(max=1.0)) ** 2

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # the pixel statistics OpenAI's CLIP was trained with; HPSv2 and
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)  # ImageReward normalise with them too


@dataclass
class ClipScorer:
    """A CLIP model with its tokenizer and preprocessing settings; scores images against a prompt.

    Preprocessing (resize the short side, centre crop, normalise) is done in torch, on the scorer's
    device, so ONE path serves black-box scoring (under inference mode) and the shortcut gradient:
    pixel tensors in, losses out; images become PIL only when they are saved.
    """

    model: object  # transformers.CLIPModel
    tokenizer: object  # transformers.CLIPTokenizer
    image_size: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str = ""

    @classmethod
    def from_pretrained(cls, name: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> "ClipScorer":
        model, tokenizer, processor = load_clip(name, torch.device(device), dtype)
        return cls.from_parts(model, tokenizer, processor, name)

    @classmethod
    def from_parts(cls, model, tokenizer, processor, name: str = "") -> "ClipScorer":
        size = processor.size.get("shortest_edge") or processor.size.get("height")
        crop = processor.crop_size.get("height") if getattr(processor, "crop_size", None) else size
        return cls(model, tokenizer, int(size), int(crop), tuple(processor.image_mean), tuple(processor.image_std), name or model.name_or_path)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_tokens(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    def target(self, prompt: str) -> torch.Tensor:
        """The prompt's text embedding [1, D], what `loss` measures images against."""
        return self.embed_text([prompt])

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt").to(self.device)
        return _features(self.model.get_text_features(**tokens)).float()

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] in [0, 1] -> CLIP input: bicubic resize of the short side, centre crop, normalise."""
        h, w = pixels.shape[-2:]
        scale = self.image_size / min(h, w)
        if (h, w) != (round(h * scale), round(w * scale)):
            pixels = F.interpolate(pixels, size=(round(h * scale), round(w * scale)), mode="bicubic", align_corners=False, antialias=True)
        h, w = pixels.shape[-2:]
        top, left = (h - self.crop_size) // 2, (w - self.crop_size) // 2
        pixels = pixels[..., top : top + self.crop_size, left : left + self.crop_size]
        mean = torch.tensor(self.mean, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
        return (pixels - mean) / std

    def embed_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image features of [N, 3, H, W] pixels in [0, 1] (differentiable), in float32 or wider."""
        dtype = next(self.model.parameters()).dtype
        features = _features(self.model.get_image_features(pixel_values=self.preprocess(pixels.to(self.device, dtype))))
        return features.to(torch.promote_types(features.dtype, torch.float32))

    def loss(self, pixels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Spherical distance [N] of each image to the target text embedding (lower is a better match)."""
        return spherical_distance(self.embed_pixels(pixels), target.to(self.device))


def _features(output) -> torch.Tensor:
    """transformers 5 returns a model output from get_*_features; 4.x returns the tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def load_clip_scorer(path: str, device: torch.device, dtype: torch.dtype, name: str) -> ClipScorer:
    """The registry's loader (objectives/scorers.py): the paper's spherical CLIP loss."""
    return ClipScorer.from_parts(*load_clip(path, device, dtype), name)


def load_clip(name: str, device: torch.device, dtype: torch.dtype, processor_name: str | None = None, what: str = "CLIP scorer"):
    """A transformers CLIPModel with its tokenizer and image-preprocessing settings (from `processor_name`
    when the checkpoint ships only the model, as PickScore_v1 does)."""
    from transformers import AutoImageProcessor, CLIPModel, CLIPTokenizer
    from transformers.utils import logging as hf_logging

    check_local(name, what, "config.json", "transformers CLIPModel")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # CLIPImageProcessor warns that torchvision is absent; we preprocess ourselves
    try:
        model, info = CLIPModel.from_pretrained(name, dtype=dtype, output_loading_info=True)
        tokenizer = CLIPTokenizer.from_pretrained(processor_name or name)
        processor = AutoImageProcessor.from_pretrained(processor_name or name)
    except (OSError, ValueError, EnvironmentError) as e:
        raise not_found(what, name, "transformers CLIPModel (config.json, model weights, tokenizer, preprocessor_config.json)", e) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = list(info.get("missing_keys") or []) + [k for k, *_ in info.get("mismatched_keys") or []]
    if missing:  # transformers would initialise them at random and only warn: a scorer that scores noise
        shown = ", ".join(sorted(missing)[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UsageError(f"The {what} {name!r} lacks {len(missing)} weights of a CLIPModel ({shown}); it is not a complete "
                         "CLIP model (a text-only CLIPTextModel, say). Pass a CLIPModel folder or hub id with --scorer.")
    model = model.to(device).requires_grad_(False).eval()
    return model, tokenizer, processor
