"""ImageReward (Xu et al., NeurIPS 2023) as a dpodiff scorer: loss = minus the reward.

ImageReward is BLIP: a ViT-L/16 image encoder whose tokens feed, by cross-attention, BLIP's BERT-base text encoder
("med"); a linear MLP (768 -> 1024 -> 128 -> 64 -> 16 -> 1, dropouts between, its ReLUs commented out) reads the text
encoder's first token. Its `score_gard`/`score` (ImageReward/ImageReward.py) is

    text_output = blip.text_encoder(ids, attention_mask=mask, encoder_hidden_states=blip.visual_encoder(image), ...)
    reward = (mlp(text_output.last_hidden_state[:, 0]) - 0.16717362830052426) / 1.0333394966054072

We map `ImageReward.pt` onto transformers' BLIP modules (`BlipVisionModel`, and `BlipTextModel` with cross-attention,
the two towers of `BlipForImageTextRetrieval`) rather than re-implement BLIP: transformers' BLIP is a port of the same
vit.py and med.py, so the text keys are unchanged and the vision keys need only the renames of transformers'
`convert_blip_original_pytorch_to_hf.py`; a reimplementation would be 200 more lines to test for the same numbers.
BLIP's ViT uses LayerNorm eps 1e-6 (transformers' BlipVisionConfig defaults to 1e-5), which we set.

Tokens: bert-base-uncased's WordPiece with BLIP's added [DEC] and [ENC] (so the vocabulary is 30524), 35 tokens,
padded to 35 with an attention mask. ImageReward feeds the tokenizer's ids as they come: [CLS] at position 0, NOT
BLIP's [ENC] (its score, score_gard and training code never replace it), and so do we.

Files: `ImageReward.pt` (hub repo THUDM/ImageReward; a bare state dict) and the bert-base-uncased tokenizer, which
ImageReward itself fetches by name. We look for the tokenizer in a `tokenizer/` folder next to the checkpoint
(vocab.txt, e.g. `hf download google-bert/bert-base-uncased vocab.txt tokenizer_config.json --local-dir
FOLDER/tokenizer`), then in the Hugging Face cache. `med_config.json` is not needed: sizes come from the weights'
shapes, and every BLIP ViT and BERT size has 64-wide attention heads.

Images: ImageReward's `_transform(224)` is CLIP's (bicubic resize of the short side, centre crop, CLIP mean/std),
which is ClipScorer's preprocessing; we call it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dpodiff.errors import UsageError
from dpodiff.loading import checkpoint_file, read_torch_file
from dpodiff.objectives.clip_loss import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ClipScorer

CHECKPOINT_NAME = "ImageReward.pt"
FETCH = f"Download {CHECKPOINT_NAME} from the hub repo THUDM/ImageReward (`hf download THUDM/ImageReward {CHECKPOINT_NAME} --local-dir FOLDER`) and pass the file or its folder."
REWARD_MEAN, REWARD_STD = 0.16717362830052426, 1.0333394966054072  # ImageReward.__init__: self.mean, self.std
MAX_TOKENS = 35  # ImageReward: tokenizer(prompt, padding="max_length", truncation=True, max_length=35)
HEAD_WIDTH = 64  # ViT-L: 1024 wide, 16 heads; BERT-base: 768 wide, 12 heads
TOKENIZER_HELP = ("ImageReward needs the bert-base-uncased tokenizer: put it in a `tokenizer` folder next to ImageReward.pt "
                  "(`hf download google-bert/bert-base-uncased vocab.txt tokenizer_config.json --local-dir FOLDER/tokenizer`) "
                  "or in the Hugging Face cache (`hf download google-bert/bert-base-uncased`).")


class ImageRewardModel(nn.Module):
    """BLIP's image and text towers and ImageReward's MLP head; forward gives the normalised reward."""

    def __init__(self, vision_config, text_config, mlp_sizes: list[int], mlp_slots: list[int]):
        from transformers import BlipTextModel, BlipVisionModel

        super().__init__()
        self.visual_encoder = BlipVisionModel(vision_config)
        self.text_encoder = BlipTextModel(text_config, add_pooling_layer=False)
        # the slots between the linears held dropouts: the identity at inference
        layers: list[nn.Module] = [nn.Identity() for _ in range(max(mlp_slots) + 1)]
        for slot, (n_in, n_out) in zip(mlp_slots, itertools.pairwise(mlp_sizes)):
            layers[slot] = nn.Linear(n_in, n_out)
        self.mlp = nn.Sequential(*layers)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[N] rewards of N preprocessed images against N token rows."""
        image_embeds = self.visual_encoder(pixel_values=pixel_values).last_hidden_state
        # no encoder mask: ImageReward's image_atts are all ones
        text = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=image_embeds).last_hidden_state
        mlp_dtype = next(self.mlp.parameters()).dtype
        return ((self.mlp(text[:, 0].to(mlp_dtype)) - REWARD_MEAN) / REWARD_STD)[:, 0]


@dataclass
class RewardPrompt:
    """The prompt's token row, as ImageReward pads it: [1, 35] ids and attention mask."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor


@dataclass
class ImageRewardScorer:
    """ImageReward with its tokenizer; loss = minus the reward. Preprocessing is ClipScorer's (see preprocess)."""

    model: ImageRewardModel
    tokenizer: object  # transformers.BertTokenizer with [DEC] and [ENC] added
    image_size: int
    crop_size: int
    mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    std: tuple[float, float, float] = OPENAI_CLIP_STD
    name: str = ""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_tokens(self) -> int:
        return MAX_TOKENS

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """ImageReward's _transform(224) is CLIP's: ClipScorer.preprocess reads only the four fields we share."""
        return ClipScorer.preprocess(self, pixels)

    def target(self, prompt: str) -> RewardPrompt:
        tokens = self.tokenizer([prompt], padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        return RewardPrompt(tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device))

    def rewards(self, pixels: torch.Tensor, target: RewardPrompt) -> torch.Tensor:
        """[N] ImageRewards of [N, 3, H, W] pixels in [0, 1] (differentiable), in float32."""
        dtype = self.model.visual_encoder.embeddings.patch_embedding.weight.dtype
        images = self.preprocess(pixels.to(self.device, torch.float32)).to(dtype)  # CPU has no half-precision antialiased bicubic
        n = images.shape[0]
        ids, mask = (t.to(self.device).expand(n, -1) for t in (target.input_ids, target.attention_mask))
        return self.model(images, ids, mask).float()

    def loss(self, pixels: torch.Tensor, target: RewardPrompt) -> torch.Tensor:
        """[N] minus the reward (lower is better)."""
        return -self.rewards(pixels, target)


def load_image_reward(path: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, name: str = "") -> ImageRewardScorer:
    """The ImageReward scorer from ImageReward.pt, or a folder holding it (and, best, a `tokenizer` folder)."""
    file = checkpoint_file(path, (CHECKPOINT_NAME,), "ImageReward checkpoint", FETCH)
    model = image_reward_from_state_dict(_read_state_dict(file))
    tokenizer = load_tokenizer(file.parent)
    vocab = model.text_encoder.embeddings.word_embeddings.num_embeddings
    if len(tokenizer) != vocab:
        raise UsageError(f"The tokenizer found for ImageReward has {len(tokenizer)} tokens with [DEC] and [ENC], the model "
                         f"{vocab}: it is not bert-base-uncased. {TOKENIZER_HELP}")
    model = model.to(torch.device(device), dtype).requires_grad_(False).eval()
    model.mlp.float()  # ImageReward scores `last_hidden_state[:, 0].float()`: the head stays in float32
    size = int(model.visual_encoder.config.image_size)
    return ImageRewardScorer(model, tokenizer, size, size, name=name or f"image-reward:{path}")


def load_tokenizer(folder: Path):
    """bert-base-uncased from `folder/tokenizer` or the Hugging Face cache, with BLIP's [DEC] and [ENC] (blip.py's init_tokenizer)."""
    from transformers import BertTokenizer

    from dpodiff.loading import hub_reachable

    local = folder / "tokenizer"
    if local.is_dir() and not any((local / f).is_file() for f in ("vocab.txt", "tokenizer.json")):
        raise UsageError(f"{str(local)!r} holds no vocab.txt or tokenizer.json. {TOKENIZER_HELP}")  # transformers would build an empty one
    try:
        if local.is_dir():
            tokenizer = BertTokenizer.from_pretrained(str(local))
        else:
            try:
                tokenizer = BertTokenizer.from_pretrained("bert-base-uncased", local_files_only=True)
            except OSError:
                if not hub_reachable():
                    raise
                tokenizer = BertTokenizer.from_pretrained("bert-base-uncased")
    except (OSError, ValueError) as e:
        where = f"{str(local)!r} is not a BERT tokenizer folder" if local.is_dir() else "no tokenizer was found"
        raise UsageError(f"{where} ({type(e).__name__}: {str(e).splitlines()[0][:200]}). {TOKENIZER_HELP}") from None
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


def _read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    state = read_torch_file(file, FETCH)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or "blip.visual_encoder.patch_embed.proj.weight" not in state or "mlp.layers.0.weight" not in state:
        raise UsageError(f"{str(file)!r} is not an ImageReward checkpoint: it has no BLIP visual encoder and MLP head "
                         f"('blip.visual_encoder.*', 'mlp.layers.*'). Pass {CHECKPOINT_NAME} from the hub repo THUDM/ImageReward.")
    return state


def _vision_key(key: str) -> str:
    """BLIP vit.py names -> transformers BlipVisionModel names (convert_blip_original_pytorch_to_hf.py's renames)."""
    for old, new in (("patch_embed.proj", "embeddings.patch_embedding"), ("cls_token", "embeddings.class_embedding"),
                     ("pos_embed", "embeddings.position_embedding"), ("norm.", "post_layernorm.")):
        if key.startswith(old):
            return new + key[len(old):]
    block, rest = key.removeprefix("blocks.").split(".", 1)
    for old, new in (("norm1", "layer_norm1"), ("norm2", "layer_norm2"), ("attn.qkv", "self_attn.qkv"),
                     ("attn.proj", "self_attn.projection"), ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")):
        if rest.startswith(old + "."):
            return f"encoder.layers.{block}.{new}{rest[len(old):]}"
    raise KeyError(key)


def image_reward_to_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ImageReward.pt keys -> ImageRewardModel keys; BLIP's contrastive projections (unused by the reward) dropped."""
    out = {}
    for key, value in state.items():
        if key.startswith("blip.visual_encoder."):
            out["visual_encoder." + _vision_key(key.removeprefix("blip.visual_encoder."))] = value
        elif key.startswith("blip.text_encoder."):
            if not key.endswith("embeddings.position_ids"):  # a buffer old transformers saved; rebuilt by the model
                out["text_encoder." + key.removeprefix("blip.text_encoder.")] = value
        elif key.startswith("mlp.layers."):
            out["mlp." + key.removeprefix("mlp.layers.")] = value
        elif not key.startswith(("blip.vision_proj.", "blip.text_proj.")):
            raise KeyError(key)
    return out


def image_reward_configs(state: dict[str, torch.Tensor]):
    """(BlipVisionConfig, BlipTextConfig, MLP sizes, MLP slots) with the sizes the ImageReward.pt shapes imply."""
    from transformers import BlipTextConfig, BlipVisionConfig

    def count(prefix: str) -> int:
        return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})

    width, _, patch, _ = state["blip.visual_encoder.patch_embed.proj.weight"].shape
    vision = BlipVisionConfig(
        hidden_size=width, num_attention_heads=max(1, width // HEAD_WIDTH), num_hidden_layers=count("blip.visual_encoder.blocks."),
        intermediate_size=state["blip.visual_encoder.blocks.0.mlp.fc1.weight"].shape[0], patch_size=patch,
        image_size=patch * math.isqrt(state["blip.visual_encoder.pos_embed"].shape[1] - 1),
        hidden_act="gelu", layer_norm_eps=1e-6,  # vit.py: nn.GELU, partial(nn.LayerNorm, eps=1e-6)
    )
    t = "blip.text_encoder."
    vocab, hidden = state[t + "embeddings.word_embeddings.weight"].shape
    text = BlipTextConfig(  # med_config.json: BERT-base with cross-attention in every layer, gelu, eps 1e-12
        vocab_size=vocab, hidden_size=hidden, num_attention_heads=max(1, hidden // HEAD_WIDTH),
        num_hidden_layers=count(t + "encoder.layer."), intermediate_size=state[t + "encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=state[t + "embeddings.position_embeddings.weight"].shape[0],
        encoder_hidden_size=state[t + "encoder.layer.0.crossattention.self.key.weight"].shape[1],
        hidden_act="gelu", layer_norm_eps=1e-12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        is_decoder=True,  # what makes transformers build the cross-attention; forward stays bidirectional (is_decoder=False)
    )
    slots = sorted(int(k.split(".")[2]) for k in state if k.startswith("mlp.layers.") and k.endswith(".weight"))
    sizes = [state[f"mlp.layers.{slots[0]}.weight"].shape[1]] + [state[f"mlp.layers.{s}.weight"].shape[0] for s in slots]
    return vision, text, sizes, slots


def image_reward_from_state_dict(state: dict[str, torch.Tensor]) -> ImageRewardModel:
    """A float32 ImageRewardModel holding ImageReward.pt's weights; every weight used, none missing."""
    from dpodiff.objectives.hpsv2 import _no_init

    try:
        vision, text, sizes, slots = image_reward_configs(state)
        converted = image_reward_to_transformers(state)
    except (KeyError, IndexError, ValueError) as e:
        raise UsageError(f"The ImageReward state dict is not BLIP + MLP as ImageReward saves it (missing or unknown weight {e}). "
                         f"Pass {CHECKPOINT_NAME} from the hub repo THUDM/ImageReward.") from None
    with _no_init():  # the weights are loaded next
        model = ImageRewardModel(vision, text, sizes, slots)
    try:
        model.load_state_dict({k: v.float() for k, v in converted.items()}, strict=True)
    except RuntimeError as e:
        raise UsageError(f"The ImageReward state dict does not fit the BLIP model its shapes describe ({str(e).splitlines()[0][:300]}).") from None
    return model
