"""ImageReward: a tiny BLIP + MLP state dict in ImageReward.pt's own key layout, loaded as a user's path is, checked
against an independent re-implementation of BLIP's vit.py and med.py forward on the original keys."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dpodiff.errors import UsageError
from dpodiff.objectives.image_reward import (
    REWARD_MEAN,
    REWARD_STD,
    ImageRewardScorer,
    load_image_reward,
)
from dpodiff.objectives.scorer import Scorer

PROMPT = "a photo of a red cat wearing a hat"
WORDS = ["a", "photo", "of", "red", "cat", "##s", "wearing", "hat", "blue", "dog"]
VISION, TEXT, LAYERS, PATCH, IMAGE = 128, 128, 2, 16, 32  # 2 heads of 64 in each tower, as BLIP's
MLP_SLOTS, MLP_SIZES = [0, 2, 4, 6, 7], [TEXT, 64, 32, 16, 8, 1]  # ImageReward's Sequential: linears at 0, 2, 4, 6, 7


def write_tokenizer(folder: Path) -> int:
    """A tiny WordPiece vocabulary in bert-base-uncased's format; returns its size with [DEC] and [ENC] added."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    return 5 + len(WORDS) + 2


def tiny_image_reward_state(vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under ImageReward.pt's keys (BLIP vit.py + med.py + ImageReward's MLP), of its architecture."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.1, base=0.0):
        return torch.randn(*shape, generator=g) * scale + base

    sd = {"blip.visual_encoder.patch_embed.proj.weight": r(VISION, 3, PATCH, PATCH), "blip.visual_encoder.patch_embed.proj.bias": r(VISION),
          "blip.visual_encoder.cls_token": r(1, 1, VISION), "blip.visual_encoder.pos_embed": r(1, (IMAGE // PATCH) ** 2 + 1, VISION),
          "blip.visual_encoder.norm.weight": r(VISION, base=1), "blip.visual_encoder.norm.bias": r(VISION)}
    for i in range(LAYERS):
        p = f"blip.visual_encoder.blocks.{i}."
        sd |= {p + "norm1.weight": r(VISION, base=1), p + "norm1.bias": r(VISION), p + "norm2.weight": r(VISION, base=1), p + "norm2.bias": r(VISION),
               p + "attn.qkv.weight": r(3 * VISION, VISION), p + "attn.qkv.bias": r(3 * VISION),
               p + "attn.proj.weight": r(VISION, VISION), p + "attn.proj.bias": r(VISION),
               p + "mlp.fc1.weight": r(4 * VISION, VISION), p + "mlp.fc1.bias": r(4 * VISION),
               p + "mlp.fc2.weight": r(VISION, 4 * VISION), p + "mlp.fc2.bias": r(VISION)}
    t = "blip.text_encoder."
    sd |= {t + "embeddings.word_embeddings.weight": r(vocab, TEXT), t + "embeddings.position_embeddings.weight": r(40, TEXT),
           t + "embeddings.LayerNorm.weight": r(TEXT, base=1), t + "embeddings.LayerNorm.bias": r(TEXT),
           t + "embeddings.position_ids": torch.arange(40).expand(1, -1)}  # old transformers saved this buffer
    for i in range(LAYERS):
        p = f"{t}encoder.layer.{i}."
        for block, kv_width in (("attention.", TEXT), ("crossattention.", VISION)):
            sd |= {p + block + "self.query.weight": r(TEXT, TEXT), p + block + "self.query.bias": r(TEXT),
                   p + block + "self.key.weight": r(TEXT, kv_width), p + block + "self.key.bias": r(TEXT),
                   p + block + "self.value.weight": r(TEXT, kv_width), p + block + "self.value.bias": r(TEXT),
                   p + block + "output.dense.weight": r(TEXT, TEXT), p + block + "output.dense.bias": r(TEXT),
                   p + block + "output.LayerNorm.weight": r(TEXT, base=1), p + block + "output.LayerNorm.bias": r(TEXT)}
        sd |= {p + "intermediate.dense.weight": r(2 * TEXT, TEXT), p + "intermediate.dense.bias": r(2 * TEXT),
               p + "output.dense.weight": r(TEXT, 2 * TEXT), p + "output.dense.bias": r(TEXT),
               p + "output.LayerNorm.weight": r(TEXT, base=1), p + "output.LayerNorm.bias": r(TEXT)}
    sd |= {"blip.vision_proj.weight": r(16, VISION), "blip.vision_proj.bias": r(16),  # BLIP's contrastive heads, unused
           "blip.text_proj.weight": r(16, TEXT), "blip.text_proj.bias": r(16)}
    for slot, n_in, n_out in zip(MLP_SLOTS, MLP_SIZES, MLP_SIZES[1:]):
        sd |= {f"mlp.layers.{slot}.weight": r(n_out, n_in, scale=1 / math.sqrt(n_in)), f"mlp.layers.{slot}.bias": r(n_out)}
    return sd


# --- BLIP's forward, written from ImageReward/models/BLIP/vit.py and med.py, on the original keys --------------------

def _heads(x: torch.Tensor, n: int) -> torch.Tensor:
    return x.view(x.shape[0], x.shape[1], n, -1).transpose(1, 2)


def _attention(q, k, v, heads: int, mask=None) -> torch.Tensor:
    q, k, v = _heads(q, heads), _heads(k, heads), _heads(v, heads)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores + mask
    out = scores.softmax(-1) @ v
    return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)


def blip_visual_encoder(sd: dict, image: torch.Tensor) -> torch.Tensor:
    p = "blip.visual_encoder."
    x = F.conv2d(image, sd[p + "patch_embed.proj.weight"], sd[p + "patch_embed.proj.bias"], stride=PATCH).flatten(2).transpose(1, 2)
    x = torch.cat([sd[p + "cls_token"].expand(x.shape[0], -1, -1), x], dim=1) + sd[p + "pos_embed"]

    def ln(y, name):
        return F.layer_norm(y, (VISION,), sd[name + ".weight"], sd[name + ".bias"], eps=1e-6)

    for i in range(LAYERS):
        b = f"{p}blocks.{i}."
        q, k, v = F.linear(ln(x, b + "norm1"), sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"]).chunk(3, dim=-1)
        x = x + F.linear(_attention(q, k, v, VISION // 64), sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])
        h = F.gelu(F.linear(ln(x, b + "norm2"), sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"]))
        x = x + F.linear(h, sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])
    return ln(x, p + "norm")


def blip_text_encoder(sd: dict, ids: torch.Tensor, mask: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
    t = "blip.text_encoder."

    def lin(y, name):
        return F.linear(y, sd[name + ".weight"], sd[name + ".bias"])

    def ln(y, name):
        return F.layer_norm(y, (TEXT,), sd[name + ".weight"], sd[name + ".bias"], eps=1e-12)

    x = sd[t + "embeddings.word_embeddings.weight"][ids] + sd[t + "embeddings.position_embeddings.weight"][: ids.shape[1]]
    x = ln(x, t + "embeddings.LayerNorm")
    additive = (1.0 - mask[:, None, None, :].float()) * -10000.0  # med.py's get_extended_attention_mask
    for i in range(LAYERS):
        p = f"{t}encoder.layer.{i}."
        a = p + "attention."
        x = ln(lin(_attention(lin(x, a + "self.query"), lin(x, a + "self.key"), lin(x, a + "self.value"), TEXT // 64, additive),
                   a + "output.dense") + x, a + "output.LayerNorm")
        c = p + "crossattention."
        x = ln(lin(_attention(lin(x, c + "self.query"), lin(image_embeds, c + "self.key"), lin(image_embeds, c + "self.value"), TEXT // 64),
                   c + "output.dense") + x, c + "output.LayerNorm")
        x = ln(lin(F.gelu(lin(x, p + "intermediate.dense")), p + "output.dense") + x, p + "output.LayerNorm")
    return x


def image_reward_by_hand(sd: dict, image: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ImageReward.score_gard: (mlp(text_output[:, 0]) - mean) / std, the MLP's linears applied one after the other."""
    h = blip_text_encoder(sd, ids, mask, blip_visual_encoder(sd, image))[:, 0]
    for slot in MLP_SLOTS:
        h = F.linear(h, sd[f"mlp.layers.{slot}.weight"], sd[f"mlp.layers.{slot}.bias"])
    return ((h - REWARD_MEAN) / REWARD_STD)[:, 0]


# --- fixtures and tests -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """What a user downloads: ImageReward.pt, and the bert-base-uncased tokenizer in a `tokenizer` folder beside it."""
    folder = tmp_path_factory.mktemp("image-reward")
    vocab = write_tokenizer(folder / "tokenizer")
    torch.save(tiny_image_reward_state(vocab), folder / "ImageReward.pt")
    return folder


@pytest.fixture(scope="module")
def state(folder) -> dict:
    return torch.load(folder / "ImageReward.pt", weights_only=True)


@pytest.fixture(scope="module")
def scorer(folder) -> ImageRewardScorer:
    return load_image_reward(str(folder / "ImageReward.pt"), "cpu", torch.float32, "image-reward:tiny")


def test_loader_gives_a_scorer_of_blip_sizes(scorer, folder):
    assert isinstance(scorer, Scorer) and scorer.name == "image-reward:tiny" and scorer.max_tokens == 35
    assert scorer.image_size == scorer.crop_size == IMAGE
    assert scorer.model.visual_encoder.config.layer_norm_eps == 1e-6
    assert scorer.model.text_encoder.config.num_attention_heads == TEXT // 64
    assert not any(p.requires_grad for p in scorer.model.parameters())
    assert load_image_reward(str(folder)).max_tokens == 35  # the folder holding ImageReward.pt works too


def test_prompt_tokens_are_as_imagereward_makes_them(scorer):
    target = scorer.target(PROMPT)
    tok = scorer.tokenizer
    assert tok.convert_tokens_to_ids(["[DEC]", "[ENC]"]) == [len(tok) - 2, len(tok) - 1]  # BLIP's init_tokenizer
    assert target.input_ids.shape == target.attention_mask.shape == (1, 35)
    assert target.input_ids[0, 0] == tok.cls_token_id  # [CLS], not [ENC]: ImageReward does not replace it
    n = int(target.attention_mask.sum())
    assert n == len(PROMPT.split()) + 2 and (target.input_ids[0, n:] == tok.pad_token_id).all()


def test_converted_towers_equal_the_original_blip(scorer, state):
    torch.manual_seed(1)
    image = torch.randn(2, 3, IMAGE, IMAGE)
    target = scorer.target(PROMPT)
    ids, mask = target.input_ids.expand(2, -1), target.attention_mask.expand(2, -1)
    with torch.no_grad():
        embeds = scorer.model.visual_encoder(pixel_values=image).last_hidden_state
        reference = blip_visual_encoder(state, image)
        torch.testing.assert_close(embeds, reference, atol=1e-5, rtol=1e-5)
        text = scorer.model.text_encoder(input_ids=ids, attention_mask=mask, encoder_hidden_states=embeds).last_hidden_state
        torch.testing.assert_close(text[:, 0], blip_text_encoder(state, ids, mask, reference)[:, 0], atol=1e-5, rtol=1e-5)


def test_loss_is_minus_the_reward_on_clip_preprocessing(scorer, state):
    torch.manual_seed(2)
    pixels = torch.rand(2, 3, 48, 64)  # short side to 32, centre crop, CLIP mean/std (ImageReward's _transform)
    resized = F.interpolate(pixels, size=(32, 43), mode="bicubic", align_corners=False, antialias=True)[..., 5:37]
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    torch.testing.assert_close(scorer.preprocess(pixels), (resized - mean) / std)

    target = scorer.target(PROMPT)
    with torch.no_grad():
        loss = scorer.loss(pixels, target)
        expected = image_reward_by_hand(state, (resized - mean) / std, target.input_ids.expand(2, -1), target.attention_mask.expand(2, -1))
    assert loss.shape == (2,) and loss.dtype == torch.float32
    torch.testing.assert_close(loss, -expected, atol=1e-5, rtol=1e-5)


def test_loss_is_differentiable_in_the_pixels(scorer):
    pixels = torch.rand(2, 3, 40, 40, requires_grad=True)
    scorer.loss(pixels, scorer.target(PROMPT)).sum().backward()
    assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0


def test_bad_files_are_usage_errors(tmp_path, folder, state):
    with pytest.raises(UsageError, match="does not exist"):
        load_image_reward(str(tmp_path / "ImageReward.pt"))
    with pytest.raises(UsageError, match="holds no ImageReward.pt"):
        load_image_reward(str(tmp_path))
    (tmp_path / "ImageReward.pt").write_bytes(b"\x00garbage")
    with pytest.raises(UsageError, match="not a readable torch checkpoint"):
        load_image_reward(str(tmp_path))
    torch.save({"state_dict": {"visual.conv1.weight": torch.zeros(2)}}, tmp_path / "ImageReward.pt")  # an HPSv2 file, say
    with pytest.raises(UsageError, match="not an ImageReward checkpoint"):
        load_image_reward(str(tmp_path))
    torch.save({**state, "blip.text_decoder.cls.weight": torch.zeros(2)}, tmp_path / "ImageReward.pt")
    with pytest.raises(UsageError, match="unknown weight"):
        load_image_reward(str(tmp_path))
    torch.save({k: v for k, v in state.items() if "crossattention" not in k}, tmp_path / "ImageReward.pt")
    with pytest.raises(UsageError, match="not BLIP"):
        load_image_reward(str(tmp_path))


def test_a_missing_or_wrong_tokenizer_is_a_usage_error(tmp_path, state):
    torch.save(state, tmp_path / "ImageReward.pt")
    (tmp_path / "tokenizer").mkdir()
    with pytest.raises(UsageError, match="holds no vocab.txt"):
        load_image_reward(str(tmp_path))
    (tmp_path / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nword\n")
    with pytest.raises(UsageError, match="not bert-base-uncased"):
        load_image_reward(str(tmp_path))


def test_shapes_of_the_real_checkpoint_give_blip_large_and_bert_base():
    """ImageReward.pt holds BLIP ViT-L/16 at 224 and BERT-base with cross-attention: its shapes must give those configs."""
    from dpodiff.objectives.image_reward import image_reward_configs

    def m(*shape):
        return torch.empty(*shape, device="meta")

    t = "blip.text_encoder."
    state = {"blip.visual_encoder.patch_embed.proj.weight": m(1024, 3, 16, 16), "blip.visual_encoder.pos_embed": m(1, 197, 1024),
             t + "embeddings.word_embeddings.weight": m(30524, 768), t + "embeddings.position_embeddings.weight": m(512, 768),
             t + "encoder.layer.0.crossattention.self.key.weight": m(768, 1024)}
    state |= {f"blip.visual_encoder.blocks.{i}.mlp.fc1.weight": m(4096, 1024) for i in range(24)}
    state |= {f"{t}encoder.layer.{i}.intermediate.dense.weight": m(3072, 768) for i in range(12)}
    for slot, n_in, n_out in zip(MLP_SLOTS, [768, 1024, 128, 64, 16], [1024, 128, 64, 16, 1]):
        state[f"mlp.layers.{slot}.weight"] = m(n_out, n_in)
    vision, text, sizes, slots = image_reward_configs(state)
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads, vision.intermediate_size, vision.image_size) == (1024, 24, 16, 4096, 224)
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.intermediate_size, text.encoder_hidden_size) == (768, 12, 12, 3072, 1024)
    assert text.vocab_size == 30524 and sizes == [768, 1024, 128, 64, 16, 1] and slots == MLP_SLOTS


def test_half_precision_scores_in_float32(folder):
    scorer = load_image_reward(str(folder), "cpu", torch.bfloat16)
    assert scorer.model.mlp[0].weight.dtype == torch.float32  # the head stays in float32, as ImageReward's .float()
    loss = scorer.loss(torch.rand(2, 3, 32, 32), scorer.target(PROMPT))
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()


def test_improve_hybrid_end_to_end(tmp_path, tiny_model_dir, folder):
    from test_scorers import check_improve_hybrid

    check_improve_hybrid(tmp_path, tiny_model_dir, f"imagereward:{folder / 'ImageReward.pt'}")
