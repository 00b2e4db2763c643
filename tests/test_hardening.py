"""Bad input of every kind gets exit 2 and one paragraph, before any model work where it can be."""

import json
from pathlib import Path

import pytest

from cli_runner import run_cli

PROMPT = "a red circle above a blue square"
MISSING_MODEL = ["--model", "/nonexistent/model"]  # a check that comes first never reaches the model


@pytest.mark.parametrize("command, args, message", [
    ("generate", ["--steps", "0"], "--steps 0 is out of range; give 1 to 1000"),
    ("improve", ["--steps", "10000"], "--steps 10000 is out of range"),
    ("generate", ["--height", "33"], "--height 33 is not a positive multiple of 8"),
    ("generate", ["--width", "-8"], "--width -8 is not a positive multiple of 8"),
    ("generate", ["--batch-size", "0"], "--batch-size 0"),
    ("generate", ["--seeds", "99999999999999999999999"], "more than 10000 images per candidate"),
    ("improve", ["--seeds", "1000000000"], "more than 10000 images per candidate"),
    ("improve", ["--seeds", "2", "--seed", "7"], "either --seeds"),
    ("improve", ["--space-source", "wordnet2"], "--space-source 'wordnet2' is not known"),
    ("attack", ["--scheduler", "euler_a"], "--scheduler 'euler_a' is not known"),
    ("improve", ["--guidance", "-1"], "--guidance -1 is outside 0 to 50"),
    ("generate", ["--guidance", "1e308"], "--guidance 1e+308 is outside 0 to 50"),
    ("improve", ["--guidance", "1"], "at 1 or below classifier-free guidance is off, so a negative prompt has no effect"),
    ("attack", ["--guidance", "0.5"], "at 1 or below classifier-free guidance is off"),
    ("improve", ["--negative-mode", "nag"], "--negative-mode 'nag' is not known"),
])
def test_bad_options_are_refused_before_the_model_loads(tmp_path, command, args, message):
    code, err = run_cli(command, PROMPT, *MISSING_MODEL, "--out", tmp_path / "out", *args)
    assert code == 2 and message in " ".join(err.split()), err


@pytest.mark.parametrize("span, message", [
    ({"start": 6, "end": 2, "choices": ["x"]}, "start < end"),
    ({"start": 2.0, "end": 5, "choices": ["red"]}, "must be a character offset"),
    ({"start": 2, "end": 500, "choices": ["red"]}, "start < end <= 32"),
])
def test_malformed_span_offsets_are_refused(tmp_path, models, span, message):
    space = {"format": "dpodiff-space", "version": 1, "prompt": PROMPT, "positive": [span], "negative": []}
    (tmp_path / "space.json").write_text(json.dumps(space))
    code, err = run_cli("attack", PROMPT, "--space", tmp_path / "space.json", "--out", tmp_path / "out", *models)
    assert code == 2 and message in " ".join(err.split()), err


@pytest.fixture
def models(tiny_model_dir, tiny_scorer_dir) -> list:
    return ["--model", tiny_model_dir, "--scorer", tiny_scorer_dir, "--steps", 1]


def test_particular_seeds_with_seed(tmp_path, models):
    code, err = run_cli("generate", PROMPT, "--seed", 7, "--seed", 1234, "--out", tmp_path, *models)
    assert code == 0, err
    data = json.loads((tmp_path / "result.json").read_text())
    assert data["seeds"] == [7, 1234] and {p.name for p in tmp_path.glob("seed*.png")} == {"seed7.png", "seed1234.png"}


def test_an_output_folder_with_another_run_needs_overwrite(tmp_path, models):
    code, err = run_cli("generate", PROMPT, "--seeds", 3, "--out", tmp_path, *models)
    assert code == 0, err
    code, err = run_cli("generate", "a green triangle", "--seeds", 1, "--out", tmp_path, *models)
    assert code == 2 and "already holds a run" in " ".join(err.split()) and "--overwrite" in err
    assert json.loads((tmp_path / "result.json").read_text())["prompt"] == PROMPT  # the earlier run is untouched
    code, err = run_cli("generate", "a green triangle", "--seeds", 1, "--out", tmp_path, "--overwrite", *models)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["grid.png", "seed0.png"]  # no image of the other prompt left


@pytest.mark.parametrize("target, message", [("dpodiff.no_such_module:judge", "cannot be imported"),
                                             ("dpodiff.shapes.judge:no_such_function", "has no 'no_such_function'")])
def test_a_judge_that_cannot_load_is_a_clean_error(tmp_path, tiny_model_dir, tiny_scorer_dir, target, message):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "dpodiff_judge.json").write_text(json.dumps({"judge": target}))
    code, err = run_cli("generate", PROMPT, "--model", model, "--scorer", tiny_scorer_dir, "--steps", 1, "--seeds", 1, "--out", tmp_path / "out")
    assert code == 2 and message in " ".join(err.split()), err


def test_a_local_model_without_scorer_fails_at_once_offline(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # the default scorer is certainly not cached
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("dpodiff.loading.hub_reachable", lambda timeout=3.0: False)
    code, err = run_cli("generate", PROMPT, "--model", tiny_model_dir, "--steps", 1, "--out", tmp_path / "out")
    assert code == 2 and "CLIP scorer 'openai/clip-vit-base-patch32'" in err and "the hub cannot be reached" in " ".join(err.split())


def test_a_space_of_fifty_spans_is_searched(tiny_pipe, tiny_scorer):
    """50 spans of 10 choices (a space of 10^50 candidates): fitted to the window and searched, not stuck."""
    import dpodiff
    from dpodiff.spaces import SearchSpace, Span

    words = ["red", "blue", "green", "cat", "dog", "sun", "car", "tree", "box", "cup"] * 5
    prompt, spans, start = " ".join(words), [], 0
    for w in words:
        spans.append(Span(start, start + len(w), [w] + [f"{w}{i}" for i in range(9)]))
        start += len(w) + 1
    result = dpodiff.optimize(prompt, pipeline=tiny_pipe, scorer=tiny_scorer, space=SearchSpace(prompt, positive=spans), task="improve",
                              positive=True, algorithm="epo", budget=3, seeds=[0], steps=1)
    assert result.evaluations == 3 and result.fit["positive_tokens_after"] <= 77


@pytest.mark.parametrize("index", ["[]", "null", "5"])
def test_a_model_index_that_is_not_an_object_is_refused(tmp_path, tiny_model_dir, tiny_scorer_dir, index):
    import shutil

    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    (model / "model_index.json").write_text(index)
    code, err = run_cli("generate", PROMPT, "--model", model, "--scorer", tiny_scorer_dir, "--out", tmp_path / "out")
    assert code == 2 and "model_index.json of" in err and "not the object diffusers writes" in " ".join(err.split())


def test_a_reference_space_whose_synonyms_are_not_an_object_is_refused(tmp_path, models):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({PROMPT: {"synonym": 5, "antonym": {"red": ["blue"]}, "keywords": []}}))
    code, err = run_cli("improve", PROMPT, "--space", space, "--out", tmp_path / "out", *models)
    assert code == 2 and "'synonym' of 'a red circle above a blue square' is 5, not an object" in " ".join(err.split())


@pytest.mark.parametrize("text", ["[]", "null", '{"key": '])
def test_a_damaged_space_cache_entry_is_a_miss_and_is_rewritten(tmp_path, text):
    from dpodiff.spaces import SearchSpace, Slot, cache

    key = {"prompt": PROMPT, "source": "test"}
    cache.path_for(key, tmp_path).write_text(text)
    assert cache.read(key, tmp_path) is None
    space = SearchSpace(PROMPT, negative=[Slot("red", ["blue"])])
    cache.write(key, space, tmp_path)
    assert cache.read(key, tmp_path) == space


def test_the_ui_checks_its_port_before_loading_the_model(tmp_path):
    import socket

    code, err = run_cli("ui", "--port", 70000, *MISSING_MODEL)
    assert code == 2 and "--port 70000 is not a TCP port" in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, err = run_cli("ui", "--port", taken.getsockname()[1], *MISSING_MODEL)
    assert code == 2 and "Address already in use" in err


def test_result_files_honour_the_umask(tmp_path, tiny_model_dir, tiny_scorer_dir):
    import os

    old = os.umask(0o022)
    try:
        code, err = run_cli("generate", PROMPT, "--model", tiny_model_dir, "--scorer", tiny_scorer_dir, "--steps", 1, "--seeds", 1,
                            "--out", tmp_path / "out")
    finally:
        os.umask(old)
    assert code == 0, err
    assert {oct(p.stat().st_mode & 0o777) for p in (tmp_path / "out").iterdir()} == {"0o644"}


def test_version_and_an_interrupted_load(tmp_path, monkeypatch):
    import dpodiff
    import dpodiff.models

    code, out = run_cli("--version")
    assert code == 0

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dpodiff.models, "load_models", interrupted)
    code, err = run_cli("generate", PROMPT, "--out", tmp_path / "out")
    assert code == 130 and "Interrupted while loading the models" in err
    assert dpodiff.__version__ in __import__("subprocess").run(
        [__import__("sys").executable, "-m", "dpodiff.cli", "--version"], capture_output=True, text=True).stdout


def test_the_suite_runs_offline_and_apart_from_the_users_cache():
    """conftest's guards: another host cannot be reached (as on a machine without a network), and built spaces
    go to a folder of the suite's own, not ~/.cache/dpodiff/spaces."""
    import socket

    from dpodiff.loading import hub_reachable
    from dpodiff.spaces.cache import default_dir

    with pytest.raises(ConnectionRefusedError, match="tests do not reach the network"):
        socket.create_connection(("203.0.113.1", 443), timeout=1)
    assert not hub_reachable(timeout=1)
    assert Path.home() not in default_dir().parents
