"""Results are never destroyed, numbers are never NaN, and what reaches the terminal is safe."""

import errno
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dpodiff.display import shown, terminal
from dpodiff.errors import UsageError
from dpodiff.files import save_all, to_json, write_json
from cli_runner import run_cli


def test_json_is_strictly_finite_by_construction():
    text = to_json({"loss": math.nan, "best": [1.0, math.inf, -math.inf], "nested": {"x": (2.5, math.nan)}})
    assert json.loads(text) == {"loss": None, "best": [1.0, None, None], "nested": {"x": [2.5, None]}}
    assert "NaN" not in text and "Infinity" not in text


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "result.json"
    write_json(path, {"version": 1})

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        write_json(path, {"version": 2, "bad": Unserialisable()})
    assert json.loads(path.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left behind


def test_kill_9_during_a_save_never_leaves_a_partial_result(tmp_path):
    """A child rewrites result.json with a large payload again and again; SIGKILL at a random moment
    must leave the previous complete file or the new one, never an empty or cut one."""
    path = tmp_path / "result.json"
    write_json(path, {"round": -1})
    code = textwrap.dedent(f"""
        from dpodiff.files import write_json
        for i in range(10**6):
            write_json({str(path)!r}, {{"round": i, "payload": ["x" * 1000] * 2000}})
    """)
    rounds, killed = [], 0
    for delay in (0.3, 0.7, 1.1, 1.5):
        child = subprocess.Popen([sys.executable, "-c", code])
        try:
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
            killed += child.wait() == -signal.SIGKILL
        rounds.append(json.loads(path.read_text())["round"])
        assert isinstance(rounds[-1], int)
    assert killed >= 2 and max(rounds) >= 0, (killed, rounds)  # killed while it was writing, not before it began


def test_kill_9_between_the_write_and_the_rename_keeps_the_previous_file(tmp_path):
    """The child stops inside write_atomic after its 4th file is written and fsynced, before the rename;
    SIGKILL there must leave round 2 in result.json and round 3 only in the temporary file."""
    path, marker = tmp_path / "result.json", tmp_path / "paused"
    code = textwrap.dedent(f"""
        import os, time
        from pathlib import Path
        from dpodiff.files import write_json
        rename, calls = os.replace, []
        def paused(src, dst):
            calls.append(src)
            if len(calls) == 4:
                Path({str(marker)!r}).write_text(str(src))
                time.sleep(120)
            rename(src, dst)
        os.replace = paused
        for i in range(6):
            write_json({str(path)!r}, {{"round": i, "payload": ["x" * 1000] * 200}})
    """)
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the child never reached the rename"
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
    assert json.loads(path.read_text())["round"] == 2
    assert json.loads(Path(marker.read_text()).read_text())["round"] == 3  # written in full, never renamed


def test_a_full_disk_on_one_image_keeps_the_others_and_says_where(tmp_path):
    written = []

    def ok(name):
        return name, lambda p: written.append(p.name) or p.write_text("x")

    def full(p):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(UsageError, match=r"grid.png \(No space left on device\).*MiB free"):
        save_all(tmp_path, [ok("result.json"), ok("space.json"), ("grid.png", full), ok("best_seed0.png")])
    assert written == ["result.json", "space.json", "best_seed0.png"]


def test_terminal_text_is_escaped_and_short():
    assert shown("a red circle\x1b[2J\x07") == "a red circle\\x1b[2J\\x07"
    assert len(shown("a" * 10_000)) == 80
    assert terminal("[bold]red[/bold]\x1b") == "\\[bold]red\\[/bold]\\x1b"


@pytest.mark.parametrize("args, message", [
    (["--guidance", "nan"], "--guidance nan is not a finite number"),
    (["--guidance", "inf"], "--guidance inf is not a finite number"),
    (["--min-similarity", "nan"], "--min-similarity nan"),
])
def test_non_finite_options_are_refused_before_any_model_work(tmp_path, args, message):
    """The model folder does not exist: had the options been checked after loading, the error would name it."""
    code, err = run_cli("attack", "a red circle", "--out", tmp_path, "--model", tmp_path / "no-such-model", *args)
    assert code == 2 and message in " ".join(err.split()) and "no-such-model" not in err


def test_a_ten_thousand_character_prompt_gets_a_short_message(tmp_path, tiny_model_dir, tiny_scorer_dir):
    code, err = run_cli("generate", "a red circle " * 800, "--model", tiny_model_dir, "--scorer", tiny_scorer_dir, "--out", tmp_path)
    assert code == 2 and "tokens long" in err and len(err) < 1000


def test_a_text_only_clip_is_not_a_scorer(tmp_path, tiny_model_dir):
    from transformers import CLIPImageProcessor, CLIPTextModel

    from dpodiff.testing import _text_config
    from dpodiff.tokenizers import clip_tokenizer

    folder = tmp_path / "text-only"
    CLIPTextModel(_text_config(32)).save_pretrained(folder)
    clip_tokenizer().save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)
    code, err = run_cli("generate", "a red circle", "--model", tiny_model_dir, "--scorer", folder, "--out", tmp_path / "out")
    assert code == 2 and "lacks" in err and "not a complete" in " ".join(err.split())


def test_escape_codes_in_a_prompt_do_not_reach_the_terminal(tmp_path, tiny_model_dir, tiny_scorer_dir):
    code, err = run_cli("generate", "a red\x1b[2J circle [bold]", "--model", tiny_model_dir, "--scorer", tiny_scorer_dir,
                        "--steps", 1, "--seeds", 1, "--out", tmp_path)
    assert code == 0, err
    assert "\x1b[2J" not in err and "\\x1b[2J" in err and "[bold]" in err


def test_a_pipeline_with_missing_weights_is_refused(tmp_path, tiny_scorer_dir):
    from safetensors.torch import load_file, save_file

    from dpodiff.testing import build_tiny_pipeline

    folder = build_tiny_pipeline(tmp_path / "partial")
    weights = folder / "text_encoder" / "model.safetensors"
    state = load_file(weights)
    missing = sorted(state)[3]
    del state[missing]
    save_file(state, weights)
    code, err = run_cli("generate", "a red circle", "--model", folder, "--scorer", tiny_scorer_dir, "--out", tmp_path / "out")
    assert code == 2 and "text_encoder: 1" in err and missing in " ".join(err.split())


def test_a_non_finite_select_threshold_is_refused(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n")
    code, err = run_cli("bench", prompts, "--select", "--select-threshold", "nan", "--out", tmp_path / "bench")
    assert code == 2 and "--select-threshold nan is not a finite number" in " ".join(err.split())


def test_the_bench_report_shows_control_characters_escaped(tmp_path, tiny_model_dir, tiny_scorer_dir):
    prompt = "a red\x1b[31m circle"
    (tmp_path / "prompts.json").write_text(json.dumps([prompt]))
    (tmp_path / "space.json").write_text(json.dumps({prompt: {"antonym": {"red": ["blue", "green"]}}}))
    code, err = run_cli("bench", tmp_path / "prompts.json", "--space", tmp_path / "space.json", "--algos", "random", "--budget", 2,
                        "--steps", 1, "--seeds", 1, "--model", tiny_model_dir, "--scorer", tiny_scorer_dir, "--out", tmp_path / "bench")
    assert code == 0, err
    html = (tmp_path / "bench" / "report.html").read_text()
    assert "\x1b" not in html and "a red\\x1b[31m circle" in html
