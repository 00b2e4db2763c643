"""PickScore (Kirstain et al., 2023): a CLIP-H fine-tuned on human preferences; loss = minus its reward.

Score = logit_scale.exp() * cos(image embedding, text embedding), as in the PickScore_v1 model card.
The model is a transformers CLIPModel, so loading and the torch preprocessing are ClipScorer's; only
the score differs (a scaled cosine instead of the spherical distance). PickScore_v1 ships the model
alone: its card takes the tokenizer and preprocessing from the CLIP-H it was fine-tuned from, and so
do we, unless the checkpoint carries its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from dpodiff.errors import UsageError
from dpodiff.loading import check_local, hub_reachable, is_local
from dpodiff.objectives.clip_loss import ClipScorer, load_clip

PICKSCORE_MODEL = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"


@dataclass
class PickScorer(ClipScorer):
    """ClipScorer's model, tokenizer and preprocessing, scored as PickScore: higher reward, lower loss."""

    def score(self, pixels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """PickScore [N] of each image for the prompt whose text embedding is `target` (differentiable in pixels)."""
        image = F.normalize(self.embed_pixels(pixels), dim=-1)
        text = F.normalize(target.to(self.device, image.dtype), dim=-1)
        return self.model.logit_scale.exp().to(image.dtype) * (image * text).sum(-1)

    def loss(self, pixels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -self.score(pixels, target)


def load_pickscore(path: str, device: torch.device, dtype: torch.dtype, name: str) -> PickScorer:
    """The registry's loader: a PickScore CLIPModel (hub id or folder) with its own or CLIP-H's processor."""
    check_local(path, "PickScore model", "config.json", "transformers CLIPModel")  # before looking for its processor
    processor = processor_source(path)
    if processor == PICKSCORE_PROCESSOR:
        _check_processor_available(path)
    model, tokenizer, image_processor = load_clip(path, torch.device(device), dtype, processor, what="PickScore model")
    return PickScorer.from_parts(model, tokenizer, image_processor, name)


def processor_source(path: str) -> str:
    """The checkpoint itself when it holds a tokenizer and preprocessor_config.json, else CLIP-H's (as the card does)."""
    if is_local(path):
        folder = Path(path).expanduser()
        has = (folder / "preprocessor_config.json").is_file() and (folder / "tokenizer_config.json").is_file()
    else:
        from huggingface_hub import try_to_load_from_cache

        has = isinstance(try_to_load_from_cache(path, "preprocessor_config.json"), str) and \
            isinstance(try_to_load_from_cache(path, "tokenizer_config.json"), str)
    return path if has else PICKSCORE_PROCESSOR


def _check_processor_available(path: str) -> None:
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(PICKSCORE_PROCESSOR, "preprocessor_config.json"), str) or hub_reachable():
        return
    raise UsageError(
        f"The PickScore model {path!r} has no tokenizer and preprocessor_config.json of its own, so dpodiff takes them from "
        f"{PICKSCORE_PROCESSOR} (as PickScore's model card does), which is not in the local Hugging Face cache and the hub "
        f"cannot be reached. On a connected machine run `hf download {PICKSCORE_PROCESSOR} --include \"*.json\" \"*.txt\"` "
        f"(a few MB), or copy those files into the PickScore folder."
    )
