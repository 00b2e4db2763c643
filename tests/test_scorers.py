"""Scorers behind one protocol: PickScore and the aesthetic predictor on tiny real models, loaded from the
spec strings users type, checked against their formulas, their gradients, the registry's errors, and the CLI."""

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from dpodiff.errors import UsageError
from dpodiff.objectives.aesthetic import AestheticScorer
from dpodiff.objectives.clip_loss import ClipScorer
from dpodiff.objectives.pickscore import PickScorer
from dpodiff.objectives.scorer import Scorer
from dpodiff.objectives.scorers import KINDS, ScorerSpec, load_scorer, parse_scorer_spec
from dpodiff.registry import SCORERS
from cli_runner import run_cli
from dpodiff.testing import build_tiny_aesthetic, build_tiny_pickscore

PROMPT = "a red circle above a blue square"


@pytest.fixture(scope="module")
def pickscore_dir(tmp_path_factory) -> Path:
    return build_tiny_pickscore(tmp_path_factory.mktemp("tiny-pickscore"))


@pytest.fixture(scope="module")
def aesthetic_dir(tmp_path_factory) -> Path:
    return build_tiny_aesthetic(tmp_path_factory.mktemp("tiny-aesthetic"))


@pytest.fixture(scope="module")
def specs(tiny_scorer_dir, pickscore_dir, aesthetic_dir) -> dict[str, str]:
    return {"clip": str(tiny_scorer_dir), "pickscore": f"pickscore:{pickscore_dir}", "aesthetic": f"aesthetic:{aesthetic_dir}"}


def pixels_on_the_byte_grid(n: int = 2, size: int = 16) -> torch.Tensor:
    """Images a PIL round trip keeps exactly, at the tiny CLIP's own size (no resize on either path)."""
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(0)) / 255.0


def reference_image_features(folder: Path, model, pixels: torch.Tensor) -> torch.Tensor:
    """The model's own image features, preprocessed by transformers' CLIPImageProcessor from PIL images."""
    from transformers import CLIPImageProcessor

    from dpodiff.report.images import to_pil

    processor = CLIPImageProcessor.from_pretrained(folder)
    inputs = processor(images=to_pil(pixels), return_tensors="pt")
    out = model.get_image_features(pixel_values=inputs.pixel_values)
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def test_every_scorer_meets_the_protocol(specs):
    for kind, spec in specs.items():
        scorer = load_scorer(spec)
        assert isinstance(scorer, Scorer) and scorer.name == spec and scorer.max_tokens == 77, kind
        losses = scorer.loss(pixels_on_the_byte_grid(), scorer.target(PROMPT))
        assert losses.shape == (2,) and losses.dtype == torch.float32 and torch.isfinite(losses).all(), kind


def test_clip_target_is_the_text_embedding(tiny_scorer_dir):
    scorer = load_scorer(str(tiny_scorer_dir))
    assert type(scorer) is ClipScorer
    torch.testing.assert_close(scorer.target(PROMPT), scorer.embed_text([PROMPT]))


def test_pickscore_is_the_scaled_cosine_of_the_model_card(pickscore_dir):
    scorer = load_scorer(f"pickscore:{pickscore_dir}")
    assert isinstance(scorer, PickScorer)
    model = scorer.model
    assert model.logit_scale.item() == pytest.approx(3.0)  # its own scale, not CLIP's default 2.6592
    pixels = pixels_on_the_byte_grid()
    with torch.no_grad():
        tokens = scorer.tokenizer([PROMPT], padding=True, truncation=True, max_length=77, return_tensors="pt")
        text = model.get_text_features(**tokens)
        text = text if isinstance(text, torch.Tensor) else text.pooler_output
        image = reference_image_features(pickscore_dir, model, pixels)
        image = image / image.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        expected = model.logit_scale.exp() * (text @ image.T)[0]
        got = scorer.loss(pixels, scorer.target(PROMPT))
    torch.testing.assert_close(got, -expected, rtol=1e-5, atol=1e-5)


def test_aesthetic_is_the_linear_head_on_the_normalised_image_embedding(aesthetic_dir):
    scorer = load_scorer(f"aesthetic:{aesthetic_dir}")
    assert isinstance(scorer, AestheticScorer) and scorer.target(PROMPT) is None
    head = torch.load(aesthetic_dir / "sa_tiny_linear.pth", weights_only=True)
    pixels = pixels_on_the_byte_grid()
    with torch.no_grad():
        image = reference_image_features(aesthetic_dir, scorer.model, pixels)
        image = image / image.norm(dim=-1, keepdim=True)
        expected = (image @ head["weight"].T + head["bias"]).squeeze(-1)
        got = scorer.loss(pixels, None)
        other_prompt = scorer.loss(pixels, scorer.target("something else entirely"))
    torch.testing.assert_close(got, -expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(other_prompt, got)  # the prompt plays no part


@pytest.mark.parametrize("kind", ["clip", "pickscore", "aesthetic"])
def test_the_gradient_flows_to_the_pixels(specs, kind):
    """GPO's shortcut differentiates the loss in the decoded pixels, through the resize of a larger image."""
    scorer = load_scorer(specs[kind])
    pixels = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(1)).requires_grad_()
    scorer.loss(pixels, scorer.target(PROMPT)).sum().backward()
    assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().max() > 0
    assert not any(p.requires_grad for p in scorer.model.parameters())


def test_spec_forms():
    assert parse_scorer_spec("openai/clip-vit-base-patch32").kind == "clip"
    # PickScore_v1's only use is PickScore: a bare name that says so loads it, and the result records the kind
    assert parse_scorer_spec("yuvalkirstain/PickScore_v1") == ScorerSpec("pickscore", "yuvalkirstain/PickScore_v1",
                                                                         "pickscore:yuvalkirstain/PickScore_v1")
    assert parse_scorer_spec("clip:yuvalkirstain/PickScore_v1").kind == "clip"  # clip: forces the CLIP distance
    assert parse_scorer_spec("HPSv2:/models/HPS_v2.1.pt").kind == "hpsv2"
    assert parse_scorer_spec("imagereward:/m/ImageReward.pt").path == "/m/ImageReward.pt"
    assert parse_scorer_spec("C:\\models\\clip").kind == "clip"  # a drive letter is not a kind


@pytest.mark.parametrize("spec, words", [
    ("blip:/models/x.pt", ["unknown scorer kind 'blip'", *KINDS]),
    ("pickscore:", ["names no model", "pickscore:yuvalkirstain/PickScore_v1"]),
    ("", ["empty"]),
    ("aesthetic:/no/such/sa_0_4_vit_l_14_linear.pth", ["does not exist", "aesthetic-predictor"]),
    ("hpsv2:/no/such/HPS_v2.1.pt", ["does not exist", "hf download xswu/HPSv2", "hpsv2:/models/HPS_v2.1_compressed.pt"]),
    ("hpsv2:xswu/HPSv2", ["does not exist"]),  # read from a local file, not the hub
    ("imagereward:/no/such/ImageReward.pt", ["does not exist"]),
    ("pickscore:/no/such/folder", ["does not exist"]),
])
def test_registry_errors_say_what_and_how(spec, words):
    with pytest.raises(UsageError) as e:
        load_scorer(spec)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_a_bare_file_asks_for_its_kind(tmp_path):
    head = tmp_path / "head.pth"
    torch.save(torch.nn.Linear(16, 1).state_dict(), head)
    with pytest.raises(UsageError, match="aesthetic:"):
        load_scorer(str(head))


def test_a_kind_whose_module_is_absent_is_a_usage_error(monkeypatch, tmp_path):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"")
    absent = dataclasses.replace(SCORERS["hpsv2"], target="dpodiff.objectives._not_installed:load")
    monkeypatch.setitem(SCORERS.entries, "hpsv2", absent)
    with pytest.raises(UsageError, match="not part of this install"):
        load_scorer(f"hpsv2:{checkpoint}")


def test_the_registry_imports_no_reward_model():
    """Each kind's module is imported only when named, so a kind with missing dependencies costs the others nothing."""
    import subprocess
    import sys

    code = "import sys, dpodiff.objectives.scorers as s; print(sorted(m for m in sys.modules if m.startswith('dpodiff.objectives.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "hpsv2" not in loaded and "image_reward" not in loaded and "pickscore" not in loaded and "aesthetic" not in loaded


def _aesthetic_folder_with(tmp_path, aesthetic_dir, heads: dict[str, dict]) -> Path:
    folder = tmp_path / "aesthetic"
    folder.mkdir()
    for f in aesthetic_dir.iterdir():
        if f.suffix not in (".pth", ".pt"):
            (folder / f.name).write_bytes(f.read_bytes())
    for name, state in heads.items():
        torch.save(state, folder / name)
    return folder


@pytest.mark.parametrize("heads, words", [
    ({}, ["exactly one head file", "none"]),
    ({"a.pth": torch.nn.Linear(16, 1).state_dict(), "b.pt": torch.nn.Linear(16, 1).state_dict()}, ["exactly one head file", "a.pth, b.pt"]),
    ({"h.pth": torch.nn.Linear(768, 1).state_dict()}, ["768-dimensional", "ViT-L/14"]),
    ({"h.pth": torch.nn.Sequential(torch.nn.Linear(16, 4), torch.nn.Linear(4, 1)).state_dict()}, ["not a linear aesthetic head", "MLP"]),
])
def test_aesthetic_heads_are_checked(tmp_path, aesthetic_dir, heads, words):
    folder = _aesthetic_folder_with(tmp_path, aesthetic_dir, heads)
    with pytest.raises(UsageError) as e:
        load_scorer(f"aesthetic:{folder}")
    assert all(w in str(e.value) for w in words), str(e.value)


@pytest.mark.parametrize("kind", ["pickscore", "aesthetic"])
def test_improve_hybrid_end_to_end(tmp_path, tiny_model_dir, specs, kind):
    check_improve_hybrid(tmp_path, tiny_model_dir, specs[kind])


def check_improve_hybrid(tmp_path, model_dir, spec: str):
    """`dpodiff improve --algo hybrid` with this --scorer on the tiny pipeline: GPO's gradient goes through the scorer."""
    out = tmp_path / "improve"
    space = tmp_path / "space.json"
    space.write_text(json.dumps({PROMPT: {"antonym": {"red": ["blue", "green"], "circle": ["square", "triangle"]},
                                          "synonym": {}, "keywords": ["red", "circle"]}}))
    code, err = run_cli("improve", PROMPT, "--algo", "hybrid", "--budget", 4, "--seeds", 1, "--steps", 2, "--space", space,
                        "--model", model_dir, "--scorer", spec, "--out", out)
    assert code == 0, err
    data = json.loads((out / "result.json").read_text())
    assert data["scorer"] == spec and data["evaluations"] == 4 and data["gpo"]["losses"]
    assert all(math.isfinite(v) for v in data["gpo"]["losses"])  # no NaN from the reward's gradient
    untrained = torch.softmax(torch.tensor([1.0, 0.0, 0.0]), 0).tolist()  # each slot: empty, then two words
    moved = [max(abs(a - b) for a, b in zip(p, untrained)) for p in data["gpo"]["probabilities"]]
    assert len(moved) == 2 and min(moved) > 1e-3, moved  # a gradient reached every slot's logits through the scorer
