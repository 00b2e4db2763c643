"""--negative-mode: SD's negative prompt (cfg) and Perp-Neg (perp), in the black-box path, the shortcut gradient and the records."""

import json

import pytest
import torch

import dpodiff
from dpodiff.backends import GenerationSettings, Request
from dpodiff.backends.guidance import guide
from dpodiff.config import RunConfig
from dpodiff.report.metadata import read_metadata
from dpodiff.spaces import SearchSpace, Slot, Span
from cli_runner import run_cli
from dpodiff.testing import check_shortcut_gradient

PROMPT = "a red circle above a blue square"


def stacked(*parts):
    return torch.cat([torch.tensor([p], dtype=torch.float64) for p in parts])


def test_cfg_puts_the_negative_in_the_empty_prompts_place():
    negative, positive = [1.0, 2.0], [3.0, 1.0]
    out = guide(stacked(negative, positive), 3.0, "cfg")
    assert out.tolist() == [[1 + 3 * 2, 2 + 3 * -1]]


def test_perp_drops_the_part_of_the_negative_along_the_prompt():
    empty, positive = [1.0, 1.0], [3.0, 1.0]  # d_pos = (2, 0)
    along = guide(stacked([5.0, 1.0], positive, empty), 2.0, "perp")  # d_neg = (4, 0): parallel, nothing pushed away
    assert along.tolist() == [[1 + 2 * 2, 1.0]]
    across = guide(stacked([1.0, 4.0], positive, empty), 2.0, "perp")  # d_neg = (0, 3): perpendicular, pushed away in full
    assert across.tolist() == [[1 + 2 * 2, 1 - 2 * 3]]
    mixed = guide(stacked([2.0, 3.0], positive, empty), 2.0, "perp")  # d_neg = (1, 2): only (0, 2) counts
    torch.testing.assert_close(mixed, torch.tensor([[5.0, -3.0]], dtype=torch.float64))


def test_perp_with_an_empty_negative_draws_what_cfg_draws(tiny_pipe):
    """The own sampling loop of perp reproduces the pipeline's images where both modes agree."""
    requests = [Request(PROMPT, "", 0), Request("a blue square", "", 3)]
    cfg = tiny_pipe.generate(requests, GenerationSettings(steps=3))
    perp = tiny_pipe.generate(requests, GenerationSettings(steps=3, negative_mode="perp"))
    torch.testing.assert_close(perp, cfg, atol=1e-5, rtol=0)


def test_a_negative_equal_to_the_prompt_cancels_it_under_cfg_only(tiny_pipe):
    plain = tiny_pipe.generate([Request(PROMPT, "", 0)], GenerationSettings(steps=3))
    cfg = tiny_pipe.generate([Request(PROMPT, PROMPT, 0)], GenerationSettings(steps=3))
    perp = tiny_pipe.generate([Request(PROMPT, PROMPT, 0)], GenerationSettings(steps=3, negative_mode="perp"))
    torch.testing.assert_close(perp, plain, atol=1e-5, rtol=0)  # no direction left that the prompt does not share
    assert (cfg - plain).abs().max() > 0.05  # cfg: e_neg = e_pos, no guidance at all
    other = tiny_pipe.generate([Request(PROMPT, "green, blurry", 0)], GenerationSettings(steps=3, negative_mode="perp"))
    assert (other - plain).abs().max() > 1e-3  # a negative with its own content does steer


def test_perp_shortcut_gradient_matches_finite_differences(tiny_model_dir, tiny_scorer_dir):
    from dpodiff.models import load_pipeline
    from dpodiff.objectives.clip_loss import ClipScorer

    space = SearchSpace(PROMPT, positive=[Span(2, 5, ["red", "crimson"])],
                        negative=[Slot("red", ["blue", "green"]), Slot("quality", ["blurry", "low quality"])])
    backend = load_pipeline(str(tiny_model_dir), torch.device("cpu"), torch.float64)
    scorer = ClipScorer.from_pretrained(str(tiny_scorer_dir), "cpu", torch.float64)
    check_shortcut_gradient(backend, scorer, space, t_index=2, negative_mode="perp")


def test_gpo_runs_under_perp_and_records_it(tiny_pipe, tiny_scorer):
    space = SearchSpace(PROMPT, negative=[Slot("red", ["blue", "green"]), Slot("quality", ["blurry", "low quality"])])
    result = dpodiff.optimize(PROMPT, pipeline=tiny_pipe, scorer=tiny_scorer, space=space, algorithm="hybrid", budget=4, seeds=[0],
                              steps=3, negative_mode="perp", validate=None, gpo_settings=dpodiff.optimizers.GPOSettings(iterations=2))
    assert result.generation["negative_mode"] == "perp" and result.config["negative_mode"] == "perp"
    # every candidate's loss is that of its images under perp
    evaluation = result.history[-1]
    images = tiny_pipe.generate([Request(evaluation.prompt, evaluation.negative_prompt, 0)], GenerationSettings(3, 7.5, negative_mode="perp"))
    assert tiny_scorer.loss(images, tiny_scorer.target(PROMPT)).item() == pytest.approx(evaluation.loss, abs=1e-4)


def test_the_mode_is_in_result_json_and_the_png(tmp_path, tiny_model_dir, tiny_scorer_dir):
    out = tmp_path / "gen"
    code, err = run_cli("generate", PROMPT, "--negative-prompt", "blurry", "--negative-mode", "perp", "--seeds", 1, "--out", out,
                        "--model", tiny_model_dir, "--scorer", tiny_scorer_dir, "--steps", 2)
    assert code == 0, err
    data = json.loads((out / "result.json").read_text())
    assert data["generation"]["negative_mode"] == "perp" and data["config"]["negative_mode"] == "perp"
    text, chunk = read_metadata(out / "seed0.png")
    assert "Negative mode: perp" in text and chunk["generation"]["negative_mode"] == "perp"


def test_a_bench_database_made_before_the_option_stays_comparable():
    assert "negative_mode" not in RunConfig().fingerprint()
    assert RunConfig(negative_mode="perp").fingerprint()["negative_mode"] == "perp"


def test_an_unknown_mode_is_refused_before_loading():
    code, err = run_cli("improve", PROMPT, "--negative-mode", "composable")
    assert code == 2 and "--negative-mode 'composable' is not known" in err
