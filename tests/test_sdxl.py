"""SDXL through the same protocol as SD: a tiny SDXL folder saved and loaded like a user's, in every command."""

import json

import pytest
import torch

import dpodiff
from dpodiff.backends import GenerationSettings, Request
from dpodiff.backends.sdxl import StableDiffusionXLBackend
from dpodiff.errors import UsageError
from dpodiff.models import load_pipeline
from dpodiff.objectives.clip_loss import ClipScorer
from dpodiff.optimizers import GPOSettings
from dpodiff.spaces import SearchSpace, Slot, Span
from cli_runner import run_cli
from dpodiff.testing import check_shortcut_gradient, one_hot

PROMPT = "a red circle above a blue square"


def space() -> SearchSpace:
    return SearchSpace(
        PROMPT,
        positive=[Span(2, 5, ["red", "crimson", "scarlet red"])],
        negative=[Slot("red", ["blue", "green"]), Slot("quality", ["blurry", "low quality"])],
    )


@pytest.fixture(scope="module")
def sdxl(tiny_sdxl_dir):
    return load_pipeline(str(tiny_sdxl_dir), torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def sdxl64(tiny_sdxl_dir):
    return load_pipeline(str(tiny_sdxl_dir), torch.device("cpu"), torch.float64)


def test_the_family_is_read_from_model_index(sdxl):
    assert isinstance(sdxl, StableDiffusionXLBackend) and sdxl.family == "sdxl"
    assert sdxl.token_window == 77 and sdxl.native_size == 16
    assert len(sdxl.text_encoders) == 2 and sdxl.tokenizers[1].pad_token == "!"


def test_the_window_is_the_smaller_of_the_two_encoders(sdxl, monkeypatch):
    """A prompt must fit both text encoders as it is: SDXL's tokenizers would cut a longer one silently."""
    sdxl.check_window([" ".join(["red"] * 75)])  # 75 words, 77 tokens with start and end
    with pytest.raises(UsageError, match="76 tokens long, but the text encoder reads at most 75"):
        sdxl.check_window([" ".join(["red"] * 76)])
    monkeypatch.setattr(sdxl.pipe.tokenizer_2, "model_max_length", 12)  # the second encoder's window alone is smaller
    assert sdxl.token_window == 12
    with pytest.raises(UsageError, match="11 tokens long, but the text encoder reads at most 10"):
        sdxl.check_window([" ".join(["red"] * 11)])


@pytest.mark.parametrize("picks", [(0, 0, 0), (2, 1, 2), (1, 2, 0)])
def test_relaxed_encoding_is_exact_at_one_hot_vertices(sdxl64, picks):
    """Both encoders' penultimate states (concatenated) and the second's projected pooled output, taken at the
    relaxed prompt's end-of-text row, equal the pipeline's own encoding of the discrete prompts."""
    s = space()
    cond = sdxl64.relaxed_encoders(s, positive=True, negative=True)(one_hot(picks, s.sizes()))
    text, negative = s.render(picks)
    reference = sdxl64.encode([negative, text])
    present = cond.mask > 0.5  # presence 1 -> mask 1; absent rows -> mask 0
    for i in range(2):
        assert present[i].sum() == 77
        torch.testing.assert_close(cond.context[i][present[i]], reference.hidden[i], rtol=0, atol=1e-10)
    torch.testing.assert_close(cond.pooled, reference.pooled, rtol=0, atol=1e-10)


@pytest.mark.parametrize("t_index", [0, 2])
def test_shortcut_gradient_matches_finite_differences(sdxl64, tiny_scorer_dir, t_index):
    scorer = ClipScorer.from_pretrained(str(tiny_scorer_dir), "cpu", torch.float64)
    check_shortcut_gradient(sdxl64, scorer, space(), t_index)


@pytest.mark.parametrize("algo", ["random", "epo", "gpo", "hybrid"])
def test_every_algorithm_runs_on_sdxl(sdxl, tiny_scorer, algo):
    result = dpodiff.optimize(PROMPT, pipeline=sdxl, scorer=tiny_scorer, space=space(), algorithm=algo, budget=5, seeds=[0, 1],
                              steps=3, positive=True, gpo_settings=GPOSettings(iterations=2))
    assert result.evaluations == 5 and result.generation["family"] == "sdxl"
    assert result.images["best"][0].size == (16, 16)
    assert (result.gpo is not None) == (algo in ("gpo", "hybrid"))


def test_every_command_takes_an_sdxl_folder(tmp_path, tiny_sdxl_dir, tiny_scorer_dir):
    models = ["--model", tiny_sdxl_dir, "--scorer", tiny_scorer_dir, "--steps", 2, "--seeds", 1]
    space_file = tmp_path / "space.json"
    space().save(space_file)
    for command in ("improve", "attack"):
        extra = ["--min-similarity", 0.5] if command == "attack" else ["--positive"]
        code, err = run_cli(command, PROMPT, "--space", space_file, "--budget", 3, "--out", tmp_path / command, *extra, *models)
        assert code == 0, err
        assert json.loads((tmp_path / command / "result.json").read_text())["generation"]["family"] == "sdxl"
    code, err = run_cli("generate", PROMPT, "--negative-prompt", "blurry", "--out", tmp_path / "generate", *models)
    assert code == 0, err
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(PROMPT + "\n")
    code, err = run_cli("bench", prompts, "--algos", "random,hybrid", "--budget", 3, "--space", space_file,
                        "--out", tmp_path / "bench", *models)
    assert code == 0, err


def test_perp_neg_on_sdxl(sdxl, sdxl64, tiny_scorer_dir):
    """Perp-Neg's third input carries the empty prompt's pooled embedding too: its images and its shortcut gradient."""
    requests = [Request(PROMPT, "", 0), Request(PROMPT, "blurry", 1)]
    cfg = sdxl.generate(requests, GenerationSettings(steps=3))
    perp = sdxl.generate(requests, GenerationSettings(steps=3, negative_mode="perp"))
    torch.testing.assert_close(perp[0], cfg[0], atol=1e-5, rtol=0)
    assert not torch.allclose(perp[1], cfg[1], atol=1e-4)
    scorer = ClipScorer.from_pretrained(str(tiny_scorer_dir), "cpu", torch.float64)
    check_shortcut_gradient(sdxl64, scorer, space(), 2, negative_mode="perp")
