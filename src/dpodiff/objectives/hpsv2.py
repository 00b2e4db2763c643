"""HPSv2 (Wu et al., "Human Preference Score v2", 2023) as a dpodiff scorer: loss = minus the HPS.

HPSv2 is an open_clip ViT-H-14 fine-tuned on human preferences. Its checkpoints, `HPS_v2.1_compressed.pt` and
`HPS_v2_compressed.pt` from the hub repo `xswu/HPSv2`, are torch files whose "state_dict" is an open_clip CLIP
state dict. We convert that state dict into a transformers `CLIPModel` (the conversion laion used for
`laion/CLIP-ViT-H-14-laion2B-s32B-b79K`), so no open_clip, timm or torchvision is needed, and score as
HPSv2's `hpsv2/img_score.py` does:

    outputs = model(image, text)                  # open_clip CLIP.forward: L2-normalised image and text features
    logits_per_image = image_features @ text_features.T
    hps_score = torch.diagonal(logits_per_image)  # the cosine similarity: no logit scale, no factor 100

Tokens: open_clip's tokenizer is OpenAI CLIP's BPE (the one dpodiff ships) with the same 77-token window; it pads
with id 0 and pools the text at `text.argmax(-1)`, the end-of-text token (the largest id). We pad with end-of-text
instead and transformers pools at its first occurrence: the same position, and the text tower's causal mask keeps
what follows it (either padding) out of that position's features, so the features are the same.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from dpodiff.errors import UsageError
from dpodiff.loading import checkpoint_file, read_torch_file
from dpodiff.objectives.clip_loss import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ClipScorer, _features

CHECKPOINT_NAMES = ("HPS_v2.1_compressed.pt", "HPS_v2_compressed.pt")
FETCH = "Download HPS_v2.1_compressed.pt from the hub repo xswu/HPSv2 (`hf download xswu/HPSv2 HPS_v2.1_compressed.pt --local-dir FOLDER`) and pass the file or its folder."
VISION_HEAD_WIDTH = 80  # open_clip ViT-H-14.json: "head_width": 80 (1280 wide, 16 heads); shapes cannot tell heads
TEXT_HEAD_WIDTH = 64  # open_clip text towers: 1024 wide, 16 heads


@dataclass
class Hpsv2Scorer(ClipScorer):
    """A CLIPModel holding HPSv2's weights; loss = -(normalised image features . normalised text features)."""

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """HPSv2's validation transform (`light_augmentation=True` selects open_clip's `ResizeMaxSize`): the LONGER
        side to image_size (bicubic), zero padding (black, before normalising) to a centred square, then normalise.

        For the square images diffusion models make this is resize + normalise, the same as ClipScorer's. HPSv2 skips
        the padding when the longer side is already image_size (a non-square tensor its ViT then rejects); we pad.
        Resizing is antialiased, as torchvision >= 0.17 and PIL do, in float32 (CPU has no half-precision
        antialiased bicubic); the result has the input's dtype.
        """
        dtype, pixels = pixels.dtype, pixels.float()
        h, w = pixels.shape[-2:]
        scale = self.image_size / max(h, w)
        size = (round(h * scale), round(w * scale))
        if size != (h, w):
            pixels = F.interpolate(pixels, size=size, mode="bicubic", align_corners=False, antialias=True)
        pad_h, pad_w = self.image_size - size[0], self.image_size - size[1]
        pixels = F.pad(pixels, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return super().preprocess(pixels).to(dtype)  # a square of image_size: no resize, the crop is the whole, normalise

    @torch.no_grad()
    def target(self, prompt: str) -> torch.Tensor:
        """[1, D] L2-normalised text features of the prompt, in open_clip's fixed 77-token window."""
        tokens = self.tokenizer([prompt], padding="max_length", truncation=True, max_length=self.max_tokens, return_tensors="pt")
        features = _features(self.model.get_text_features(input_ids=tokens.input_ids.to(self.device)))
        return F.normalize(features.float(), dim=-1)

    def loss(self, pixels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """[N] minus the HPS of each image (the cosine similarity to the prompt; lower is better)."""
        image = F.normalize(self.embed_pixels(pixels), dim=-1)
        return -(image @ target.to(self.device, image.dtype).T)[:, 0]


def load_hpsv2(path: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, name: str = "") -> Hpsv2Scorer:
    """The HPSv2 scorer from a checkpoint file, or a folder holding one of CHECKPOINT_NAMES (v2.1 first)."""
    from dpodiff.tokenizers import clip_tokenizer

    file = checkpoint_file(path, CHECKPOINT_NAMES, "HPSv2 checkpoint", FETCH)
    model = clip_from_open_clip(_read_state_dict(file))
    model = model.to(torch.device(device), dtype).requires_grad_(False).eval()
    size = int(model.config.vision_config.image_size)
    tokenizer = clip_tokenizer(int(model.config.text_config.max_position_embeddings))
    return Hpsv2Scorer(model, tokenizer, size, size, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, name or f"hpsv2:{path}")


def _read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """The open_clip state dict of an HPSv2 checkpoint ({"state_dict": ...}; a bare state dict is accepted too)."""
    checkpoint = read_torch_file(file, FETCH)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or "visual.conv1.weight" not in {k.removeprefix("module.") for k in state}:
        raise UsageError(f"{str(file)!r} is not an HPSv2 checkpoint: it holds no open_clip ViT state dict "
                         "(no 'state_dict' with 'visual.conv1.weight'). Pass HPS_v2.1_compressed.pt or HPS_v2_compressed.pt "
                         "from the hub repo xswu/HPSv2.")
    return {k.removeprefix("module."): v for k, v in state.items()}


def clip_config_from_open_clip(state: dict[str, torch.Tensor]):
    """A CLIPConfig with the sizes the open_clip state dict's shapes imply (ViT-H-14 for HPSv2; any size for tests)."""
    from transformers import CLIPConfig

    def layers(prefix: str) -> int:
        return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})

    vision_width, _, patch, _ = state["visual.conv1.weight"].shape
    text_width = state["token_embedding.weight"].shape[1]
    vision = dict(
        hidden_size=vision_width, num_attention_heads=max(1, vision_width // VISION_HEAD_WIDTH),
        intermediate_size=state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_hidden_layers=layers("visual.transformer.resblocks."), patch_size=patch,
        image_size=patch * math.isqrt(state["visual.positional_embedding"].shape[0] - 1),
        hidden_act="gelu", layer_norm_eps=1e-5,  # open_clip: nn.GELU (ViT-H-14 is not a quickgelu model), nn.LayerNorm
    )
    text = dict(
        hidden_size=text_width, num_attention_heads=max(1, text_width // TEXT_HEAD_WIDTH),
        intermediate_size=state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_hidden_layers=layers("transformer.resblocks."), vocab_size=state["token_embedding.weight"].shape[0],
        max_position_embeddings=state["positional_embedding"].shape[0],
        hidden_act="gelu", layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=state["text_projection"].shape[1])


def open_clip_to_transformers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename (and split, transpose) an open_clip CLIP state dict into transformers CLIPModel keys."""
    out = {
        "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
        "text_model.final_layer_norm.weight": state["ln_final.weight"],
        "text_model.final_layer_norm.bias": state["ln_final.bias"],
        "text_projection.weight": state["text_projection"].T,  # open_clip: x @ proj; nn.Linear: x @ W.T
        "vision_model.embeddings.patch_embedding.weight": state["visual.conv1.weight"],
        "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
        "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": state["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": state["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": state["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": state["visual.ln_post.bias"],
        "visual_projection.weight": state["visual.proj"].T,
        "logit_scale": state["logit_scale"],
    }
    for source, target in (("transformer.resblocks.", "text_model.encoder.layers."),
                           ("visual.transformer.resblocks.", "vision_model.encoder.layers.")):
        n = len({k[len(source):].split(".")[0] for k in state if k.startswith(source)})
        for i in range(n):
            s, t = f"{source}{i}.", f"{target}{i}."
            # nn.MultiheadAttention packs q, k, v (in that order) into in_proj
            for part, w, b in zip("qkv", state[s + "attn.in_proj_weight"].chunk(3), state[s + "attn.in_proj_bias"].chunk(3)):
                out[f"{t}self_attn.{part}_proj.weight"], out[f"{t}self_attn.{part}_proj.bias"] = w, b
            for old, new in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                             ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                out[f"{t}{new}.weight"], out[f"{t}{new}.bias"] = state[f"{s}{old}.weight"], state[f"{s}{old}.bias"]
    return out


def clip_from_open_clip(state: dict[str, torch.Tensor]):
    """A float32 transformers CLIPModel holding an open_clip ViT CLIP's weights; every key used, none missing."""
    from transformers import CLIPModel

    try:
        config = clip_config_from_open_clip(state)
        converted = open_clip_to_transformers(state)
    except (KeyError, IndexError, ValueError) as e:
        raise UsageError(f"The HPSv2 state dict is not an open_clip ViT CLIP (missing or odd {e}); pass "
                         "HPS_v2.1_compressed.pt or HPS_v2_compressed.pt from the hub repo xswu/HPSv2.") from None
    used = _source_keys(state)
    left = sorted(set(state) - used)
    if left:  # an architecture we do not convert (attention pooling, layer scale, a transformers text tower...)
        raise UsageError(f"The HPSv2 state dict has {len(left)} weights an open_clip ViT-H-14 lacks ({', '.join(left[:5])}); "
                         "it is not the architecture HPSv2 uses.")
    with _no_init():  # the weights are loaded next; initialising a 1B-parameter model first costs seconds
        model = CLIPModel(config)
    try:
        model.load_state_dict({k: v.float() for k, v in converted.items()}, strict=True)
    except RuntimeError as e:
        raise UsageError(f"The HPSv2 state dict does not fit the CLIP model its shapes describe ({str(e).splitlines()[0][:300]}).") from None
    return model


def _source_keys(state: dict[str, torch.Tensor]) -> set[str]:
    """The open_clip keys open_clip_to_transformers reads."""
    fixed = {"token_embedding.weight", "positional_embedding", "ln_final.weight", "ln_final.bias", "text_projection",
             "visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding", "visual.ln_pre.weight",
             "visual.ln_pre.bias", "visual.ln_post.weight", "visual.ln_post.bias", "visual.proj", "logit_scale"}
    blocks = {k for k in state if k.startswith(("transformer.resblocks.", "visual.transformer.resblocks."))
              and k.split(".resblocks.")[1].split(".", 1)[1] in _BLOCK_KEYS}
    return fixed | blocks


_BLOCK_KEYS = {"attn.in_proj_weight", "attn.in_proj_bias"} | {
    f"{m}.{p}" for m in ("attn.out_proj", "ln_1", "ln_2", "mlp.c_fc", "mlp.c_proj") for p in ("weight", "bias")}


def _no_init():
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # its home moves between transformers versions; then we only lose time
        return nullcontext()
    return no_init_weights()
