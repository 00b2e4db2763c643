"""The shapes world's small CLIPs (the conditioning text tower, the scorer, the critic): their sizes and
recipes, building one, loading a released one into it, and its unit-norm features."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import TOKEN_LENGTH
from .render import IMAGE_SIZE

CLIP_MEAN = [0.5, 0.5, 0.5]  # the shapes CLIPs' pixel statistics: images in [-1, 1]
CLIP_STD = [0.5, 0.5, 0.5]


@dataclass
class ClipSpec:
    """Size and training recipe of one CLIP."""

    seed: int
    hidden: int
    layers: int
    projection: int
    steps: int
    batch: int
    hard_negatives: int
    lr: float = 5e-4
    miss_images: bool = False  # critic: also an image of a near miss per caption (critic.py)
    patch: int = 8  # vision patch side: 8 gives a 4x4 grid of 32-pixel images, 4 an 8x8 one
    word_blind_misses: bool = False  # critic: miss images a bag of words cannot tell apart, where there are some


def load_grown(model, weights: Path, prefix: str = "", only: tuple[str, ...] | None = None) -> None:
    """Load a released model's weights into ``model``, growing shorter text position tables.

    New positions start as copies of the last trained one (which held padding),
    so a text tower's states for short captions stay what they were. ``only``: load just the weights whose
    names start so (a new vision tower keeps its fresh weights).
    """
    from safetensors.torch import load_file

    files = sorted(weights.glob("*.safetensors"))
    state = {prefix + k if not k.startswith(prefix) else k: v.float() for k, v in load_file(files[0]).items()}
    if only:
        state = {k: v for k, v in state.items() if k.startswith(only)}
    own = model.state_dict()
    for k, v in state.items():
        if k.endswith("position_embedding.weight") and v.shape[0] < own[k].shape[0]:
            grown = v[-1:].repeat(own[k].shape[0], 1)
            grown[: len(v)] = v
            state[k] = grown
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or (not prefix and not only and missing):
        raise ValueError(f"{weights} does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")


def make_clip(spec: ClipSpec):
    from transformers import CLIPConfig, CLIPModel

    common = dict(hidden_size=spec.hidden, intermediate_size=4 * spec.hidden,
                  num_hidden_layers=spec.layers, num_attention_heads=4)
    config = CLIPConfig(
        text_config=dict(vocab_size=49408, max_position_embeddings=TOKEN_LENGTH,
                         bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, **common),
        vision_config=dict(image_size=IMAGE_SIZE, patch_size=spec.patch, **common),
        projection_dim=spec.projection,
    )
    torch.manual_seed(spec.seed)
    return CLIPModel(config)


def _features(out) -> torch.Tensor:
    # transformers 5 returns an output object whose pooler_output is projected.
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def image_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """Unit-norm CLIP image embeddings (pixel_values already normalised)."""
    return F.normalize(_features(model.get_image_features(pixel_values=pixel_values)), dim=-1)


def text_features(model, input_ids: torch.Tensor) -> torch.Tensor:
    return F.normalize(_features(model.get_text_features(input_ids=input_ids)), dim=-1)
