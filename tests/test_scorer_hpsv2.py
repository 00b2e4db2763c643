"""HPSv2: a tiny open_clip ViT CLIP checkpoint in HPSv2's file layout, loaded as a user's path is, checked against
an independent re-implementation of open_clip's forward (nn.MultiheadAttention maths on the original keys)."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dpodiff.errors import UsageError
from dpodiff.objectives.hpsv2 import Hpsv2Scorer, load_hpsv2
from dpodiff.objectives.scorer import Scorer
from dpodiff.tokenizers import clip_tokenizer

VISION_HEADS, TEXT_HEADS = 2, 2  # widths 160 and 128: open_clip ViT-H-14's head widths (80 and 64)
PROMPT = "a photo of a red cat wearing a hat"


def tiny_source_clip(seed: int = 0):
    """A tiny transformers CLIPModel of ViT-H-14's architecture (gelu, 77 tokens, CLIP's vocabulary), all weights random."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=TEXT_HEADS,
                         vocab_size=49408, max_position_embeddings=77, hidden_act="gelu", eos_token_id=49407),
        vision_config=dict(hidden_size=160, intermediate_size=320, num_hidden_layers=2, num_attention_heads=VISION_HEADS,
                           patch_size=14, image_size=28, hidden_act="gelu"),
        projection_dim=32,
    )
    model = CLIPModel(config).eval()
    with torch.no_grad():  # perturb everything (layer norms start at 1 and 0) so that a swapped key shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def to_open_clip(model) -> dict[str, torch.Tensor]:
    """The inverse of the loader's conversion: a transformers CLIPModel's weights under open_clip's keys."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    out = {
        "token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
        "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
        "ln_final.weight": sd["text_model.final_layer_norm.weight"], "ln_final.bias": sd["text_model.final_layer_norm.bias"],
        "text_projection": sd["text_projection.weight"].T.contiguous(),
        "visual.conv1.weight": sd["vision_model.embeddings.patch_embedding.weight"],
        "visual.class_embedding": sd["vision_model.embeddings.class_embedding"],
        "visual.positional_embedding": sd["vision_model.embeddings.position_embedding.weight"],
        "visual.ln_pre.weight": sd["vision_model.pre_layrnorm.weight"], "visual.ln_pre.bias": sd["vision_model.pre_layrnorm.bias"],
        "visual.ln_post.weight": sd["vision_model.post_layernorm.weight"], "visual.ln_post.bias": sd["vision_model.post_layernorm.bias"],
        "visual.proj": sd["visual_projection.weight"].T.contiguous(),
        "logit_scale": sd["logit_scale"],
    }
    for hf, oc, n in (("text_model.encoder.layers.", "transformer.resblocks.", model.config.text_config.num_hidden_layers),
                      ("vision_model.encoder.layers.", "visual.transformer.resblocks.", model.config.vision_config.num_hidden_layers)):
        for i in range(n):
            h, o = f"{hf}{i}.", f"{oc}{i}."
            out[o + "attn.in_proj_weight"] = torch.cat([sd[f"{h}self_attn.{p}_proj.weight"] for p in "qkv"])
            out[o + "attn.in_proj_bias"] = torch.cat([sd[f"{h}self_attn.{p}_proj.bias"] for p in "qkv"])
            for new, old in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                             ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                for p in ("weight", "bias"):
                    out[f"{o}{new}.{p}"] = sd[f"{h}{old}.{p}"]
    return out


# --- open_clip's forward, written from open_clip's transformer.py / model.py, on the original keys -----------------

def _blocks(x: torch.Tensor, sd: dict, prefix: str, heads: int, causal: bool) -> torch.Tensor:
    _, length, width = x.shape
    mask = torch.full((length, length), float("-inf")).triu(1) if causal else None
    i = 0
    while f"{prefix}{i}.ln_1.weight" in sd:
        p = f"{prefix}{i}."
        y = F.layer_norm(x, (width,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"]).transpose(0, 1)  # LND, as open_clip
        y = F.multi_head_attention_forward(
            y, y, y, width, heads, sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"], None, None, False, 0.0,
            sd[p + "attn.out_proj.weight"], sd[p + "attn.out_proj.bias"], training=False, need_weights=False, attn_mask=mask)[0]
        x = x + y.transpose(0, 1)
        y = F.layer_norm(x, (width,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"])
        x = x + F.linear(F.gelu(F.linear(y, sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"])), sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])
        i += 1
    return x


def open_clip_encode_image(sd: dict, image: torch.Tensor) -> torch.Tensor:
    w = sd["visual.conv1.weight"]
    x = F.conv2d(image, w, stride=w.shape[-1]).flatten(2).transpose(1, 2)
    x = torch.cat([sd["visual.class_embedding"].expand(x.shape[0], 1, -1), x], dim=1) + sd["visual.positional_embedding"]
    x = F.layer_norm(x, (w.shape[0],), sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"])
    x = _blocks(x, sd, "visual.transformer.resblocks.", VISION_HEADS, causal=False)
    return F.layer_norm(x[:, 0], (w.shape[0],), sd["visual.ln_post.weight"], sd["visual.ln_post.bias"]) @ sd["visual.proj"]


def open_clip_tokenize(text: str) -> torch.Tensor:
    """open_clip's tokenize(): [SOT] tokens [EOT] in a 77-long row of zeros."""
    ids = clip_tokenizer()(text).input_ids
    row = torch.zeros(1, 77, dtype=torch.long)
    row[0, : len(ids)] = torch.tensor(ids)
    return row


def open_clip_encode_text(sd: dict, text: torch.Tensor) -> torch.Tensor:
    width = sd["token_embedding.weight"].shape[1]
    x = sd["token_embedding.weight"][text] + sd["positional_embedding"]
    x = _blocks(x, sd, "transformer.resblocks.", TEXT_HEADS, causal=True)
    x = F.layer_norm(x, (width,), sd["ln_final.weight"], sd["ln_final.bias"])
    return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ sd["text_projection"]


# --- fixtures and tests -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def source():
    return tiny_source_clip()


@pytest.fixture(scope="module")
def open_clip_state(source):
    return to_open_clip(source)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, open_clip_state) -> Path:
    folder = tmp_path_factory.mktemp("hpsv2")
    torch.save({"state_dict": open_clip_state}, folder / "HPS_v2.1_compressed.pt")
    return folder / "HPS_v2.1_compressed.pt"


@pytest.fixture(scope="module")
def scorer(checkpoint) -> Hpsv2Scorer:
    return load_hpsv2(str(checkpoint), "cpu", torch.float32, "hpsv2:tiny")


def test_loader_gives_a_scorer_with_open_clip_sizes(scorer, checkpoint):
    assert isinstance(scorer, Scorer) and scorer.name == "hpsv2:tiny"
    assert scorer.max_tokens == 77 and scorer.image_size == scorer.crop_size == 28
    assert scorer.model.config.vision_config.num_attention_heads == VISION_HEADS
    assert scorer.model.config.text_config.num_attention_heads == TEXT_HEADS
    assert not any(p.requires_grad for p in scorer.model.parameters())
    assert load_hpsv2(str(checkpoint.parent)).model.config.projection_dim == 32  # a folder holding the file works too


def test_converted_features_equal_source_and_open_clip(scorer, source, open_clip_state):
    torch.manual_seed(1)
    image = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        converted = scorer.model.get_image_features(pixel_values=image)
        converted = converted if isinstance(converted, torch.Tensor) else converted.pooler_output
        original = source.get_image_features(pixel_values=image)
        original = original if isinstance(original, torch.Tensor) else original.pooler_output
        reference = open_clip_encode_image(open_clip_state, image)
    torch.testing.assert_close(converted, original, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(converted, reference, atol=1e-5, rtol=1e-5)

    text = F.normalize(open_clip_encode_text(open_clip_state, open_clip_tokenize(PROMPT)), dim=-1)  # padded with 0
    torch.testing.assert_close(scorer.target(PROMPT), text, atol=1e-5, rtol=1e-5)


def test_score_is_the_cosine_similarity_on_hpsv2_preprocessing(scorer, open_clip_state):
    torch.manual_seed(2)
    pixels = torch.rand(2, 3, 40, 56)  # landscape: the longer side to 28, black bars above and below
    resized = F.interpolate(pixels, size=(20, 28), mode="bicubic", align_corners=False, antialias=True)
    canvas = torch.zeros(2, 3, 28, 28)
    canvas[:, :, 4:24, :] = resized
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    torch.testing.assert_close(scorer.preprocess(pixels), (canvas - mean) / std)

    with torch.no_grad():
        image = F.normalize(open_clip_encode_image(open_clip_state, (canvas - mean) / std), dim=-1)
        text = F.normalize(open_clip_encode_text(open_clip_state, open_clip_tokenize(PROMPT)), dim=-1)
        hps = torch.diagonal(image @ text.expand(2, -1).T)  # img_score.py: image_features @ text_features.T
        loss = scorer.loss(pixels, scorer.target(PROMPT))
    assert loss.shape == (2,) and loss.dtype == torch.float32
    torch.testing.assert_close(loss, -hps, atol=1e-5, rtol=1e-5)


def test_square_images_are_resized_without_padding(scorer):
    pixels = torch.rand(1, 3, 56, 56)
    expected = F.interpolate(pixels, size=(28, 28), mode="bicubic", align_corners=False, antialias=True)
    torch.testing.assert_close(scorer.preprocess(pixels), scorer.preprocess(expected))


def test_loss_is_differentiable_in_the_pixels(scorer):
    pixels = torch.rand(2, 3, 64, 64, requires_grad=True)
    scorer.loss(pixels, scorer.target(PROMPT)).sum().backward()
    assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0


def test_bad_files_are_usage_errors(tmp_path, checkpoint):
    with pytest.raises(UsageError, match="does not exist"):
        load_hpsv2(str(tmp_path / "missing.pt"))
    with pytest.raises(UsageError, match="holds no HPS_v2.1_compressed.pt"):
        load_hpsv2(str(tmp_path))
    (tmp_path / "garbage.pt").write_text("not a checkpoint")
    with pytest.raises(UsageError, match="not a readable torch checkpoint"):
        load_hpsv2(str(tmp_path / "garbage.pt"))
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, tmp_path / "other.pt")
    with pytest.raises(UsageError, match="not an HPSv2 checkpoint"):
        load_hpsv2(str(tmp_path / "other.pt"))
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    del state["visual.ln_post.bias"]
    torch.save({"state_dict": state}, tmp_path / "broken.pt")
    with pytest.raises(UsageError, match="not an open_clip ViT CLIP"):
        load_hpsv2(str(tmp_path / "broken.pt"))
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    state["visual.transformer.resblocks.0.ls_1.gamma"] = torch.ones(160)
    torch.save({"state_dict": state}, tmp_path / "layerscale.pt")
    with pytest.raises(UsageError, match="lacks"):
        load_hpsv2(str(tmp_path / "layerscale.pt"))


def test_shapes_of_the_real_checkpoint_give_vit_h_14():
    """HPS_v2*.pt holds open_clip ViT-H-14: its shapes (on the meta device, no memory) must give that config."""
    from dpodiff.objectives.hpsv2 import clip_config_from_open_clip

    def m(*shape):
        return torch.empty(*shape, device="meta")

    state = {"visual.conv1.weight": m(1280, 3, 14, 14), "visual.positional_embedding": m(257, 1280),
             "token_embedding.weight": m(49408, 1024), "positional_embedding": m(77, 1024), "text_projection": m(1024, 1024)}
    state |= {f"visual.transformer.resblocks.{i}.mlp.c_fc.weight": m(5120, 1280) for i in range(32)}
    state |= {f"transformer.resblocks.{i}.mlp.c_fc.weight": m(4096, 1024) for i in range(24)}
    config = clip_config_from_open_clip(state)
    v, t = config.vision_config, config.text_config
    assert (v.hidden_size, v.num_hidden_layers, v.num_attention_heads, v.intermediate_size, v.patch_size, v.image_size) == (1280, 32, 16, 5120, 14, 224)
    assert (t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.intermediate_size, t.max_position_embeddings) == (1024, 24, 16, 4096, 77)
    assert config.projection_dim == 1024 and v.hidden_act == t.hidden_act == "gelu"


def test_half_precision_scores_in_float32(checkpoint):
    scorer = load_hpsv2(str(checkpoint), "cpu", torch.bfloat16)
    loss = scorer.loss(torch.rand(2, 3, 32, 32), scorer.target(PROMPT))
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()


def test_improve_hybrid_end_to_end(tmp_path, tiny_model_dir, checkpoint):
    from test_scorers import check_improve_hybrid

    check_improve_hybrid(tmp_path, tiny_model_dir, f"hpsv2:{checkpoint}")
