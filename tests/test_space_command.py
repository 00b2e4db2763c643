"""`dpodiff space` through typer, as the CLI registers it."""

import json

import pytest
import typer
from typer.testing import CliRunner

from dpodiff.errors import UsageError
from dpodiff.spaces.command import space
from dpodiff.spaces.space import load_space

app = typer.Typer()
app.command("space")(space)
app.command("other")(lambda: None)  # two commands, so typer keeps the sub-command name as the CLI does


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DPODIFF_CACHE", str(tmp_path / "cache"))


def _run(*args):
    return CliRunner().invoke(app, ["space", *map(str, args)])


def test_writes_our_format(tmp_path):
    out = tmp_path / "space.json"
    result = _run("a red car in the snow", "--kind", "antonym", "--out", out)
    assert result.exit_code == 0, result.output
    loaded = load_space(out, "a red car in the snow")
    assert {"blue", "green"} <= set(next(s for s in loaded.negative if s.name == "red").choices)


def test_writes_reference_format(tmp_path):
    out = tmp_path / "ref.json"
    result = _run("Two Dogs in the snow", "--kind", "synonym", "--source", "wordnet", "--format", "reference", "--per-word", 2, "--out", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    entry = data["Two Dogs in the snow"]
    assert set(entry) == {"synonym", "antonym", "keywords"} and entry["keywords"] == ["Dogs", "snow"]
    assert all(len(v) <= 2 for v in entry["synonym"].values())
    assert load_space(out).positive


@pytest.mark.parametrize(
    "args, message",
    [
        (["", "--kind", "synonym"], "empty"),
        (["of the and", "--kind", "synonym"], "no content words"),
        (["a red car", "--kind", "opposite"], "Unknown space kind"),
        (["a red car", "--kind", "synonym", "--source", "bing"], "space source 'bing' is not known"),
        (["a red car", "--kind", "synonym", "--format", "xml"], "Unknown --format"),
        (["a red car", "--kind", "synonym", "--source", "embedding"], "--model"),
        (["a red car", "--kind", "synonym", "--source", "llm"], "--llm-url"),
    ],
)
def test_bad_input(tmp_path, args, message):
    result = _run(*args, "--out", tmp_path / "s.json")
    assert isinstance(result.exception, UsageError) and message in str(result.exception)


def test_unwritable_out(tmp_path):
    result = _run("a red car", "--kind", "synonym", "--out", tmp_path / "missing" / "s.json")
    assert isinstance(result.exception, UsageError) and "does not exist" in str(result.exception)
    result = _run("a red car", "--kind", "synonym", "--out", tmp_path)
    assert isinstance(result.exception, UsageError) and "is a folder" in str(result.exception)
    locked = tmp_path / "locked.json"
    locked.write_text("")
    locked.chmod(0o400)
    import os
    if os.access(locked, os.W_OK):  # root ignores file modes: use a path under /proc instead
        locked = "/proc/version"
    result = _run("a red car", "--kind", "synonym", "--out", locked)
    assert isinstance(result.exception, UsageError) and "Cannot write" in str(result.exception)


def test_model_folder_for_embedding(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from dpodiff.testing import build_tiny_text_encoder

    build_tiny_text_encoder(tmp_path / "pipe", near={"car": ["automobile"]})
    out = tmp_path / "s.json"
    result = _run("a red car", "--kind", "synonym", "--source", "embedding", "--model", tmp_path / "pipe", "--out", out)
    assert result.exit_code == 0, result.output
    assert load_space(out).positive
    result = _run("a red car", "--kind", "synonym", "--source", "embedding", "--model", tmp_path / "nothing", "--out", out)
    assert isinstance(result.exception, UsageError) and "Cannot load" in str(result.exception)
