"""The LAION aesthetic predictor (v1): a linear head on the L2-normalised CLIP ViT-L/14 image embedding.

LAION-AI/aesthetic-predictor's `sa_0_4_vit_l_14_linear.pth` is the state dict of nn.Linear(768, 1)
(keys `weight` [1, 768] and `bias` [1]), applied to `encode_image(x) / ||encode_image(x)||`; the score
lands on roughly a 1-10 scale. It judges the image alone, so the prompt is ignored and the loss is
minus the score. The CLIP part is ClipScorer's model and torch preprocessing (OpenAI CLIP's resize,
centre crop and normalisation, as the predictor was trained with).

Where the parts come from (`aesthetic:PATH`):
- PATH a file: the head; the CLIP model is openai/clip-vit-large-patch14 (hub id or cache).
- PATH a folder: a CLIPModel saved there (config.json, weights, tokenizer, preprocessor_config.json)
  and exactly one head file (*.pth or *.pt) beside it, e.g. for an offline copy of both.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from dpodiff.errors import UsageError
from dpodiff.loading import check_local
from dpodiff.objectives.clip_loss import ClipScorer, load_clip

AESTHETIC_CLIP = "openai/clip-vit-large-patch14"
HEAD_URL = "https://github.com/LAION-AI/aesthetic-predictor/raw/main/sa_0_4_vit_l_14_linear.pth"
HEAD_SUFFIXES = (".pth", ".pt")


@dataclass
class AestheticScorer(ClipScorer):
    """ClipScorer's image tower and preprocessing with the aesthetic head on top."""

    head: torch.nn.Linear | None = None

    def target(self, prompt: str) -> None:
        """Nothing: the aesthetic score does not read the prompt."""

    def score(self, pixels: torch.Tensor) -> torch.Tensor:
        """Aesthetic score [N] of each image (differentiable in pixels), in float32 or wider."""
        features = F.normalize(self.embed_pixels(pixels), dim=-1)
        return F.linear(features, self.head.weight.to(features.dtype), self.head.bias.to(features.dtype)).squeeze(-1)

    def loss(self, pixels: torch.Tensor, target=None) -> torch.Tensor:
        return -self.score(pixels)


def load_aesthetic(path: str, device: torch.device, dtype: torch.dtype, name: str) -> AestheticScorer:
    """The registry's loader: the head file and its CLIP model, found as the module docstring says."""
    head_file, clip_name = aesthetic_parts(path)
    model, tokenizer, processor = load_clip(clip_name, torch.device(device), dtype, what="CLIP model of the aesthetic predictor")
    scorer = AestheticScorer.from_parts(model, tokenizer, processor, name)
    scorer.head = load_head(head_file, int(model.config.projection_dim)).to(scorer.device)
    return scorer


def aesthetic_parts(path: str) -> tuple[Path, str]:
    """(head file, CLIP model name or folder) for `aesthetic:PATH`."""
    where = Path(path).expanduser()
    if where.is_file():
        return where, AESTHETIC_CLIP
    if not where.is_dir():
        raise UsageError(f"The aesthetic predictor head {path!r} does not exist. Download it ({HEAD_URL}) and pass "
                         "aesthetic:PATH_TO_HEAD.pth, or a folder that holds a CLIPModel and the head file.")
    heads = sorted(p for p in where.iterdir() if p.suffix in HEAD_SUFFIXES and p.is_file())
    if len(heads) != 1:
        found = ", ".join(p.name for p in heads) or "none"
        raise UsageError(f"The aesthetic predictor folder {path!r} must hold exactly one head file (*.pth or *.pt) beside "
                         f"its CLIPModel; found {found}. Pass aesthetic:PATH_TO_HEAD.pth to choose one.")
    return heads[0], str(where)


def check_aesthetic(path: str, kind: str = "aesthetic") -> None:
    """The head and its CLIP model are where `aesthetic:PATH` says, before anything loads."""
    _, clip_name = aesthetic_parts(path)
    check_local(clip_name, "CLIP model of the aesthetic predictor", "config.json", "transformers CLIPModel")


def load_head(path: Path, dim: int) -> torch.nn.Linear:
    """nn.Linear(dim, 1) from a state dict with `weight` [1, dim] and `bias` [1]; anything else is refused."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
        raise UsageError(f"Could not read the aesthetic predictor head {str(path)!r} ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
                         f"It should be a torch state dict such as {HEAD_URL}.") from None
    keys = sorted(state) if isinstance(state, dict) else []
    weight = state.get("weight") if keys == ["bias", "weight"] else None
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2 or weight.shape[0] != 1:
        raise UsageError(f"{str(path)!r} is not a linear aesthetic head (a state dict with weight [1, D] and bias [1]; found keys "
                         f"{keys[:6]}). dpodiff reads LAION's v1 linear predictor ({HEAD_URL}), not the MLP of the improved predictor.")
    if weight.shape[1] != dim:
        raise UsageError(f"The aesthetic head {str(path)!r} reads {weight.shape[1]}-dimensional CLIP embeddings but its CLIP model gives "
                         f"{dim}: sa_0_4_vit_l_14_linear.pth needs CLIP ViT-L/14 ({AESTHETIC_CLIP}); pair each head with its own CLIP.")
    head = torch.nn.Linear(dim, 1)
    head.load_state_dict({k: v.float() for k, v in state.items()})
    return head.requires_grad_(False).eval()
