"""The run's journal: every scored candidate on disk as it is scored, and --resume that finishes a killed run."""

import json

import pytest

import dpodiff
from dpodiff.backends.memory import BATCH_TOLERANCE
from dpodiff.journal import JOURNAL, Journal
from dpodiff.spaces import SearchSpace, Slot
from cli_runner import run_cli

PROMPT = "a red circle above a blue square"
SPACE = SearchSpace(PROMPT, negative=[Slot("red", ["blue", "green", "yellow"]), Slot("quality", ["blurry", "low quality", "dark"])])


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no result is saved."""


def run(tiny_pipe, tiny_scorer, journal, resume=False, on_evaluation=None):
    return dpodiff.optimize(PROMPT, pipeline=tiny_pipe, scorer=tiny_scorer, space=SPACE, algorithm="epo", budget=8, seeds=[0, 1],
                            steps=2, validate=(2, 2), journal=journal, resume=resume, on_evaluation=on_evaluation)


def test_a_killed_search_resumes_to_the_result_of_one_never_stopped(tmp_path, tiny_pipe, tiny_scorer):
    whole = run(tiny_pipe, tiny_scorer, tmp_path / "whole.jsonl")

    def kill_after_three(evaluation, result):
        if len(result.history) == 3:
            raise Killed

    with pytest.raises(Killed):
        run(tiny_pipe, tiny_scorer, tmp_path / JOURNAL, on_evaluation=kill_after_three)
    lines = (tmp_path / JOURNAL).read_text().splitlines()
    assert len(lines) == 1 + 3  # the settings, then each candidate scored before the kill
    assert json.loads(lines[1])["prompt"] == PROMPT and len(json.loads(lines[1])["losses"]) == 2

    scored = []
    resumed = run(tiny_pipe, tiny_scorer, tmp_path / JOURNAL, resume=True, on_evaluation=lambda e, r: scored.append(e.seconds))
    assert resumed.resumed_from == 3 and scored[:3] == [0.0] * 3 and all(s > 0 for s in scored[3:])  # not scored again
    assert [e.candidate for e in resumed.history] == [e.candidate for e in whole.history]
    for a, b in zip(resumed.history, whole.history):  # a resumed run fills its pipeline calls with other candidates
        assert a.losses == pytest.approx(b.losses, abs=BATCH_TOLERANCE["loss"])
    assert resumed.best.index == whole.best.index
    for a, b in zip(resumed.selection.finalists, whole.selection.finalists, strict=True):
        assert (a.index, a.negative_prompt) == (b.index, b.negative_prompt)
        assert [a.search_loss, *a.losses] == pytest.approx([b.search_loss, *b.losses], abs=BATCH_TOLERANCE["loss"])
    assert [im.tobytes() for im in resumed.images["original"]] == [im.tobytes() for im in whole.images["original"]]
    assert whole.resumed_from == 0


def test_a_resume_with_other_settings_is_refused(tmp_path, tiny_pipe, tiny_scorer):
    run(tiny_pipe, tiny_scorer, tmp_path / JOURNAL)
    with pytest.raises(dpodiff.errors.UsageError, match="other settings .*steps"):
        dpodiff.optimize(PROMPT, pipeline=tiny_pipe, scorer=tiny_scorer, space=SPACE, budget=4, seeds=[0], steps=3,
                         journal=tmp_path / JOURNAL, resume=True)


def test_a_torn_last_line_is_skipped_and_a_damaged_one_refused(tmp_path):
    path = tmp_path / JOURNAL
    journal = Journal.open(path, {"prompt": PROMPT})
    journal.record(PROMPT, "", [0, 1], [0.5, float("nan")], None, 1.0)
    with path.open("a") as f:
        f.write('{"prompt": "a blue sq')  # the write a kill cut short
    reopened = Journal.open(path, {"prompt": PROMPT}, resume=True)
    losses, verdicts = reopened.lookup(PROMPT, "", [0, 1])
    assert losses[0] == 0.5 and losses[1] != losses[1] and verdicts is None  # NaN comes back as NaN
    assert reopened.lookup(PROMPT, "", [0, 2]) is None
    assert path.read_text().endswith("}\n") and len(path.read_text().splitlines()) == 2  # the fragment is gone: appends stay whole
    path.write_text(path.read_text() + 'garbage\n{"prompt": "x"}')
    with pytest.raises(dpodiff.errors.UsageError, match="line 3, is damaged"):
        Journal.open(path, {"prompt": PROMPT}, resume=True)


@pytest.fixture
def models(tiny_model_dir, tiny_scorer_dir) -> list:
    return ["--model", tiny_model_dir, "--scorer", tiny_scorer_dir, "--steps", 2, "--budget", 6, "--seeds", 2]


def test_the_command_resumes_from_a_journal_cut_by_a_kill(tmp_path, models):
    out = tmp_path / "run"
    code, err = run_cli("improve", PROMPT, "--out", out, *models)
    assert code == 0, err
    first = json.loads((out / "result.json").read_text())
    assert (out / JOURNAL).is_file()  # the journal of a finished run stays beside its result
    lines = (out / JOURNAL).read_text().splitlines()
    (out / JOURNAL).write_text("\n".join(lines[:3]) + '\n{"prompt": "a red')  # as SIGKILL left it after two candidates
    (out / "result.json").unlink()

    code, err = run_cli("improve", PROMPT, "--out", out, *models)
    assert code == 2 and "--resume to continue it" in " ".join(err.split())
    code, err = run_cli("improve", PROMPT, "--out", out, "--resume", *models)
    assert code == 0, err
    again = json.loads((out / "result.json").read_text())
    assert again["resumed_from"] == 2 and again["evaluations"] == 6
    assert [h["losses"] for h in again["history"]] == [h["losses"] for h in first["history"]]

    code, err = run_cli("improve", PROMPT, "--out", out, "--resume", *models[:-2], "--seeds", 2, "--guidance", 5)
    assert code == 2 and "other settings" in err and "guidance" in err and "then" in err
    code, err = run_cli("improve", PROMPT, "--out", tmp_path / "empty", "--resume", *models)
    assert code == 2 and "holds no journal" in " ".join(err.split())


def test_a_failed_save_prints_the_results_and_says_what_was_written(tmp_path, models, monkeypatch):
    import dpodiff.results

    def read_only(path, data):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(dpodiff.results, "write_json", read_only)
    out = tmp_path / "run"
    code, err = run_cli("improve", PROMPT, "--out", out, "--no-validate", *models)
    assert code == 2
    assert "Could not write result.json (Read-only file system), space.json" in " ".join(err.split())
    assert "Saved: original_seed0.png" in err and "The other files were saved" not in err
    assert "best" in err and "original" in err  # the results table
    assert "--resume" in err and len((out / JOURNAL).read_text().splitlines()) == 7
