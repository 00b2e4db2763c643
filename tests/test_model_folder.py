"""What a model folder says about itself: recommended generation settings (dpodiff.json) and its own
negative-prompt library (negative_prompts.json), on copies of the tiny model and on the shapes world."""

import json
import shutil

import pytest
import torch

import dpodiff
from dpodiff.config import RunConfig
from dpodiff.errors import UsageError
from dpodiff.model_folder import Recommended, read_recommended
from dpodiff.shapes import PIPELINE_DIR
from dpodiff.spaces import SearchSpace, Slot
from dpodiff.spaces.nplib import model_library
from cli_runner import run_cli

PROMPT = "a red circle above a blue square"
RECOMMENDED = {"recommended": {"steps": 3, "guidance": 2.5, "scheduler": "euler"}}
LIBRARY = {"name": "tiny-test", "slots": {"colours": ["green", "yellow"], "shapes": ["triangle"]}}


@pytest.fixture
def model_with(tmp_path, tiny_model_dir):
    """A copy of the tiny model with the given files written into it."""

    def make(**files) -> str:
        model = tmp_path / "model"
        shutil.copytree(tiny_model_dir, model)
        for name, content in files.items():
            (model / name).write_text(content if isinstance(content, str) else json.dumps(content))
        return str(model)

    return make


def _flat(text: str) -> str:
    """Text without whitespace: the console wraps long error lines anywhere, even inside a path."""
    return "".join(text.split())


def _generate(tmp_path, model, scorer, *options) -> tuple[int, str, dict | None]:
    out = tmp_path / "out"
    code, err = run_cli("generate", PROMPT, "--model", model, "--scorer", scorer, "--seeds", 1, "--out", out, "--overwrite", *options)
    return code, err, json.loads((out / "result.json").read_text()) if code == 0 else None


def test_the_model_recommendation_fills_what_the_user_left_out(tmp_path, model_with, tiny_scorer_dir):
    model = model_with(**{"dpodiff.json": RECOMMENDED})
    code, err, data = _generate(tmp_path, model, tiny_scorer_dir)
    assert code == 0, err
    assert (data["config"]["steps"], data["config"]["guidance"], data["config"]["scheduler"]) == (3, 2.5, "euler")
    assert data["generation"]["scheduler"] == "euler" and data["generation"]["steps"] == 3
    assert data["generation"]["recommended_used"] == {"steps": 3, "guidance": 2.5, "scheduler": "euler"}
    assert "model's recommended settings: 3 steps, guidance 2.5, scheduler euler (set --steps/--guidance/--scheduler to override)" in err

    code, err, data = _generate(tmp_path, model, tiny_scorer_dir, "--steps", 2, "--guidance", 4, "--scheduler", "ddim")
    assert code == 0, err
    assert (data["config"]["steps"], data["config"]["guidance"], data["config"]["scheduler"]) == (2, 4.0, "ddim")
    assert data["generation"]["scheduler"] == "ddim" and data["generation"]["recommended_used"] == {}
    assert "recommended" not in err

    code, err, data = _generate(tmp_path, model, tiny_scorer_dir, "--steps", 2)  # one given: the others still the model's
    assert (data["config"]["steps"], data["config"]["guidance"]) == (2, 2.5)
    assert data["generation"]["recommended_used"] == {"guidance": 2.5, "scheduler": "euler"}
    assert "guidance 2.5, scheduler euler (set --guidance/--scheduler to override)" in err


def test_without_a_recommendation_the_library_defaults(tmp_path, tiny_model_dir, tiny_scorer_dir):
    code, err, data = _generate(tmp_path, str(tiny_model_dir), tiny_scorer_dir, "--steps", 2)
    assert code == 0, err
    assert (data["config"]["steps"], data["config"]["guidance"], data["config"]["scheduler"]) == (2, 7.5, None)
    assert data["generation"]["scheduler"] == "ddim" and data["generation"]["recommended_used"] == {}
    assert RunConfig().resolved() == RunConfig(steps=50, guidance=7.5)


def test_optimize_reads_the_recommendation_of_a_pipeline_object(model_with, tiny_scorer):
    """A diffusers pipeline loaded in Python: the folder is found from its name_or_path."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(model_with(**{"dpodiff.json": RECOMMENDED}), dtype=torch.float32)
    space = SearchSpace(PROMPT, negative=[Slot("red", ["blue", "green"])])
    result = dpodiff.optimize(PROMPT, pipeline=pipe, scorer=tiny_scorer, space=space, budget=2, seeds=[0])
    assert (result.config["steps"], result.config["guidance"], result.config["scheduler"]) == (3, 2.5, "euler")
    assert result.generation["recommended_used"] == {"steps": 3, "guidance": 2.5, "scheduler": "euler"}
    assert result.generation["scheduler"] == "euler"
    result = dpodiff.optimize(PROMPT, pipeline=pipe, scorer=tiny_scorer, space=space, budget=2, seeds=[0], steps=2, guidance=5.0)
    assert (result.config["steps"], result.config["guidance"]) == (2, 5.0)
    assert result.generation["recommended_used"] == {"scheduler": "euler"}


def test_the_shapes_world_generates_with_its_recommended_settings(tmp_path):
    out = tmp_path / "gen"
    code, err = run_cli("generate", "a blue square", "--seeds", 1, "--out", out)  # no --steps, no --guidance
    assert code == 0, err
    data = json.loads((out / "result.json").read_text())
    assert (data["config"]["steps"], data["config"]["guidance"]) == (25, 3.0)
    assert (data["generation"]["steps"], data["generation"]["guidance"], data["generation"]["scheduler"]) == (25, 3.0, "ddim")
    assert "model's recommended settings: 25 steps, guidance 3 (set --steps/--guidance to override)" in err
    assert read_recommended(PIPELINE_DIR) == Recommended(25, 3.0, None)


@pytest.mark.parametrize("content, problem", [
    ("{not json", "not readable JSON"),
    ({"steps": 25}, 'no "recommended" object'),
    ({"recommended": {"steps": 0}}, "steps 0 is not a whole number"),
    ({"recommended": {"steps": 2.5}}, "steps 2.5 is not a whole number"),
    ({"recommended": {"guidance": "high"}}, "guidance 'high' is not a number"),
    ({"recommended": {"scheduler": "fast"}}, "scheduler 'fast' is not one of"),
    ({"recommended": {"guidance_scale": 3}}, "unknown setting 'guidance_scale'"),
])
def test_a_malformed_settings_file_is_a_usage_error(tmp_path, model_with, tiny_scorer_dir, content, problem):
    model = model_with(**{"dpodiff.json": content})
    code, err, _ = _generate(tmp_path, model, tiny_scorer_dir)
    assert code == 2 and all(_flat(text) in _flat(err) for text in ("dpodiff.json is malformed", problem, "Fix the file or remove it")), err


def test_bench_resolves_the_recommendation_before_its_fingerprint(tmp_path, model_with, tiny_scorer_dir):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n")
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"a red circle": {"synonym": {}, "antonym": {"red": ["blue", "green"]}, "keywords": ["red"]}}))
    model = model_with(**{"dpodiff.json": RECOMMENDED})
    common = ("bench", prompts, "--algos", "random", "--budget", 2, "--seeds", 1, "--space", space, "--model", model,
              "--scorer", tiny_scorer_dir, "--out", tmp_path / "bench")
    code, err = run_cli(*common)
    assert code == 0, err
    assert "model's recommended settings: 3 steps, guidance 2.5, scheduler euler" in err
    import sqlite3

    settings = json.loads(dict(sqlite3.connect(tmp_path / "bench" / "results.sqlite").execute("SELECT key, value FROM meta"))["settings"])
    assert (settings["steps"], settings["guidance"], settings["scheduler"]) == (3, 2.5, "euler")
    code, err = run_cli(*common, "--steps", 3, "--guidance", 2.5, "--scheduler", "euler")  # the same settings, given: it resumes
    assert code == 0 and "already in the database" in err, err


# -- the model's negative-prompt library ---------------------------------------------------------------

def test_the_shapes_world_space_takes_its_own_library(tmp_path):
    code, err = run_cli("improve", "a red circle", "--budget", 2, "--seeds", 1, "--steps", 2, "--out", tmp_path / "run")
    assert code == 0, err
    data = json.loads((tmp_path / "run" / "result.json").read_text())
    library = [s for s in data["space"]["negative"] if s["name"].startswith("nplib:")]
    assert library and {s["source"] for s in library} == {"nplib:shapes-world"}
    words = {c for s in data["space"]["negative"] for c in s["choices"]}
    assert not words & {"jpeg artifacts", "extra limbs", "low quality", "worst quality"}  # the generic library is not used
    assert {"blurry", "two"} <= words  # this world's own flaws and counts
    shapes = model_library(PIPELINE_DIR)
    assert shapes.name == "shapes-world" and shapes.slots["shapes"] == ("circle", "square", "triangle")


def test_a_model_library_replaces_the_generic_one_and_no_file_keeps_it(model_with, tiny_model_dir, tiny_pipe, tiny_scorer):
    from dpodiff.models import load_pipeline

    backend = load_pipeline(model_with(**{"negative_prompts.json": LIBRARY}), torch.device("cpu"), torch.float32)
    assert backend.negative_library.name == "tiny-test"
    result = dpodiff.optimize("a red circle", pipeline=backend, scorer=tiny_scorer, budget=2, seeds=[0], steps=1)
    library = [s for s in result.space["negative"] if s["name"].startswith("nplib:")]
    assert [(s["name"], s["choices"][1:], s["source"]) for s in library] == [
        ("nplib:colours", ["green", "yellow"], "nplib:tiny-test"), ("nplib:shapes", ["triangle"], "nplib:tiny-test")]

    assert tiny_pipe.negative_library is None  # no file: the generic library
    result = dpodiff.optimize("a red circle", pipeline=tiny_pipe, scorer=tiny_scorer, budget=2, seeds=[0], steps=1)
    library = [s for s in result.space["negative"] if s["name"].startswith("nplib:")]
    assert library and {s["source"] for s in library} == {"nplib"} and any("blurry" in s["choices"] for s in library)


@pytest.mark.parametrize("content, problem", [
    ("[1, 2", "not readable JSON"),
    ({"terms": ["red"]}, 'no "slots" object'),
    ({"slots": {"colours": []}}, "slot 'colours' must name a non-empty list"),
    ({"slots": {"colours": "red, blue"}}, "slot 'colours' must name a non-empty list"),
    ({"slots": {"colours": ["red", 3]}}, "slot 'colours' must name a non-empty list"),
    ({"name": "generic", "slots": {"colours": ["red"]}}, '"name" \'generic\''),
])
def test_a_malformed_library_is_a_usage_error(tmp_path, model_with, tiny_scorer_dir, content, problem):
    model = model_with(**{"negative_prompts.json": content})
    code, err, _ = _generate(tmp_path, model, tiny_scorer_dir, "--steps", 1)
    assert code == 2 and _flat("negative_prompts.json is malformed") in _flat(err) and _flat(problem) in _flat(err), err
    with pytest.raises(UsageError, match="malformed"):
        model_library(model)



def test_a_pipeline_family_dpodiff_does_not_support_is_refused_by_name(tmp_path, tiny_model_dir, tiny_scorer_dir):
    """A PixArt folder (model_index.json names the pipeline) gets exit 2 and the list of supported pipelines,
    from the CLI before loading and from the library for a pipeline object a user already holds."""
    from dpodiff.backends import as_backend

    folder = tmp_path / "pixart"
    shutil.copytree(tiny_model_dir, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps(index | {"_class_name": "PixArtAlphaPipeline"}))
    code, err = run_cli("generate", "a red circle", "--model", folder, "--scorer", tiny_scorer_dir, "--out", tmp_path / "out")
    err = " ".join(err.split())
    assert code == 2 and "PixArtAlphaPipeline, which dpodiff does not support yet" in err
    assert all(name in err for name in ("StableDiffusionPipeline", "StableDiffusionXLPipeline", "StableDiffusion3Pipeline", "FluxPipeline"))
    assert not list((tmp_path / "out").glob("*"))  # no image, no result

    class PixArtAlphaPipeline:  # what a user might pass to dpodiff.optimize
        pass

    with pytest.raises(UsageError, match="PixArtAlphaPipeline, which dpodiff does not support yet"):
        as_backend(PixArtAlphaPipeline())
