"""`dpodiff bench` end to end on tiny models: storage, summary numbers, report, resume, refusals, --select."""

import contextlib
import csv
import json
import math
import shutil
import socket
import sqlite3
import statistics
from pathlib import Path

import pytest

from cli_runner import run_cli


PROMPTS = ["a red circle above a blue square", "a green triangle next to a yellow circle"]
SPACE = {
    PROMPTS[0]: {"synonym": {"circle": ["disk", "ring"]}, "antonym": {"red": ["blue", "green", "pink"], "circle": ["square", "triangle"]}, "keywords": ["red", "circle"]},
    PROMPTS[1]: {"synonym": {"triangle": ["wedge"]}, "antonym": {"green": ["red", "blue"], "triangle": ["square", "circle"]}, "keywords": ["green", "triangle"]},
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_model_dir, tiny_scorer_dir):
    root = tmp_path_factory.mktemp("bench-inputs")
    (root / "prompts.txt").write_text("\n".join([PROMPTS[0], PROMPTS[1], "  " + PROMPTS[0] + " ", ""]) + "\n")
    (root / "space.json").write_text(json.dumps(SPACE))
    common = ["--space", root / "space.json", "--model", tiny_model_dir, "--scorer", tiny_scorer_dir,
              "--steps", 2, "--seeds", 2, "--budget", 3, "--algos", "random,epo", "--no-validate"]
    return root, common


@pytest.fixture(scope="module")
def bench_run(inputs, tmp_path_factory):
    """One benchmark: 2 prompts (one listed twice) x random, epo."""
    root, common = inputs
    out = tmp_path_factory.mktemp("bench-out")
    code, err = run_cli("bench", root / "prompts.txt", "--out", out, *common)
    assert code == 0, err
    return out, err


def rows(db: Path, sql: str, *params):
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, params)]


def test_runs_and_history_are_stored(bench_run):
    out, err = bench_run
    runs = rows(out / "results.sqlite", "SELECT * FROM runs ORDER BY id")
    assert [(r["prompt"], r["algorithm"]) for r in runs] == [(p, a) for p in PROMPTS for a in ("random", "epo")]
    assert "appear more than once" in err and "run once" in err  # the duplicate was announced, and run once
    for r in runs:
        assert r["status"] == "done" and r["task"] == "improve" and json.loads(r["seeds"]) == [0, 1] and r["evaluations"] == 3
        history = rows(out / "results.sqlite", "SELECT * FROM evaluations WHERE run_id = ? ORDER BY idx", r["id"])
        assert [h["idx"] for h in history] == [0, 1, 2]
        assert history[0]["negative_prompt"] == "" and history[0]["loss"] == r["baseline_loss"]
        assert r["best_loss"] == min(h["loss"] for h in history)
        assert json.loads(history[0]["losses"]) and statistics.fmean(json.loads(history[0]["losses"])) == pytest.approx(history[0]["loss"])
        result = json.loads((out / r["run_dir"] / "result.json").read_text())
        assert result["best"]["loss"] == r["best_loss"] and result["best"]["negative_prompt"] == r["best_negative_prompt"]
    meta = dict((m["key"], m["value"]) for m in rows(out / "results.sqlite", "SELECT * FROM meta"))
    assert meta["schema_version"] == "2" and json.loads(meta["settings"])["budget"] == 3 and len(meta["fingerprint"]) == 16


def test_summary_matches_a_hand_computation(bench_run):
    out, _ = bench_run
    runs = rows(out / "results.sqlite", "SELECT * FROM runs")
    with open(out / "summary.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [(t["task"], t["algorithm"]) for t in table] == [("improve", "random"), ("improve", "epo")]
    for t in table:
        mine = [r for r in runs if r["algorithm"] == t["algorithm"]]
        base, best = [r["baseline_loss"] for r in mine], [r["best_loss"] for r in mine]
        assert int(t["n_prompts"]) == 2
        assert float(t["baseline_loss_mean"]) == pytest.approx(sum(base) / 2, rel=1e-5)
        assert float(t["baseline_loss_std"]) == pytest.approx(abs(base[0] - base[1]) / 2 ** 0.5, rel=1e-5)  # sample std of two
        assert float(t["best_loss_mean"]) == pytest.approx(sum(best) / 2, rel=1e-5)
        assert float(t["best_loss_std"]) == pytest.approx(abs(best[0] - best[1]) / 2 ** 0.5, rel=1e-5)
        assert float(t["evaluations_per_prompt"]) == 3
        assert float(t["seconds_per_prompt"]) == pytest.approx(sum(r["wall_seconds"] for r in mine) / 2, rel=1e-5)
        assert t["judge_before"] == "" and t["judge_after"] == ""  # the tiny model has no judge
    md = (out / "summary.md").read_text()
    assert md.splitlines()[0].startswith("| task | algorithm | n_prompts | baseline_loss_mean")
    assert len(md.strip().splitlines()) == 4


def test_report_shows_every_prompt_with_images_and_plot(bench_run):
    out, _ = bench_run
    html = (out / "report.html").read_text()
    for prompt in PROMPTS:
        assert prompt in html
    sources = [s.split('"')[0] for s in html.split('src="')[1:]]
    assert sum(s.endswith("loss.png") for s in sources) == 2
    assert sum("original_seed" in s for s in sources) == 8 and sum("best_seed" in s for s in sources) == 8
    assert all((out / s).is_file() for s in sources)


def test_resume_redoes_only_missing_and_killed_runs(bench_run, inputs, tmp_path):
    root, common = inputs
    out = tmp_path / "copy"
    shutil.copytree(bench_run[0], out)
    db = out / "results.sqlite"
    before = rows(db, "SELECT * FROM runs ORDER BY id")
    losses_before = {r["id"]: [e["loss"] for e in rows(db, "SELECT loss FROM evaluations WHERE run_id = ? ORDER BY idx", r["id"])] for r in before}
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("DELETE FROM evaluations WHERE run_id = 2")
        conn.execute("DELETE FROM runs WHERE id = 2")  # never stored
        conn.execute("UPDATE runs SET status = 'running' WHERE id = 3")  # killed half way
        conn.execute("DELETE FROM evaluations WHERE run_id = 3 AND idx > 0")
    code, err = run_cli("bench", root / "prompts.txt", "--out", out, *common)
    assert code == 0, err
    assert "2 of 4 runs are already in the database" in err
    after = rows(db, "SELECT * FROM runs ORDER BY id")
    assert [r["id"] for r in after] == [1, 3, 4, 5]  # 3 redone in place, the deleted run stored anew
    assert [(r["prompt"], r["algorithm"]) for r in after] == [(PROMPTS[0], "random"), (PROMPTS[1], "random"), (PROMPTS[1], "epo"), (PROMPTS[0], "epo")]
    untouched = {r["id"]: r for r in before if r["id"] in (1, 4)}
    assert all(after_row == untouched[after_row["id"]] for after_row in after if after_row["id"] in (1, 4))
    assert all(r["status"] == "done" for r in after)
    assert rows(db, "SELECT COUNT(*) AS n FROM evaluations")[0]["n"] == 12
    redone = {r["id"]: [e["loss"] for e in rows(db, "SELECT loss FROM evaluations WHERE run_id = ? ORDER BY idx", r["id"])] for r in after}
    assert redone[3] == losses_before[3] and redone[5] == losses_before[2]  # deterministic: the same numbers again


def test_other_settings_or_schema_refused(bench_run, inputs, tmp_path):
    root, common = inputs
    out = tmp_path / "copy"
    shutil.copytree(bench_run[0], out)
    code, err = run_cli("bench", root / "prompts.txt", "--out", out, *common, "--budget", 4)
    assert code == 2 and "other settings" in err and "budget" in err
    with contextlib.closing(sqlite3.connect(out / "results.sqlite")) as conn, conn:
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    code, err = run_cli("bench", root / "prompts.txt", "--out", out, *common)
    assert code == 2 and "schema version 0" in err
    assert len(rows(out / "results.sqlite", "SELECT id FROM runs")) == 4  # nothing was added


def test_select_keeps_prompts_past_the_threshold(bench_run, inputs, tmp_path):
    root, common = inputs
    runs = rows(bench_run[0] / "results.sqlite", "SELECT prompt, baseline_loss FROM runs WHERE algorithm = 'random'")
    baseline = {r["prompt"]: r["baseline_loss"] for r in runs}
    threshold = sum(baseline.values()) / 2  # between the two prompts' original losses
    hard = max(baseline, key=baseline.get)
    out = tmp_path / "select"
    code, err = run_cli("bench", root / "prompts.txt", "--out", out, *common, "--algos", "random", "--select", "--select-threshold", threshold)
    assert code == 0, err
    assert "1 of 2 prompts" in err
    db = out / "results.sqlite"
    assert [r["prompt"] for r in rows(db, "SELECT prompt FROM runs")] == [hard]
    scored = {r["prompt"]: r["loss"] for r in rows(db, "SELECT * FROM baselines")}
    assert scored == pytest.approx(baseline, abs=1e-5)  # the same original images as the runs' first evaluation


def test_select_direction_follows_the_task(tmp_path):
    from dpodiff.bench import storage
    from dpodiff.bench.command import _select
    from dpodiff.bench.config import BenchConfig
    from dpodiff.config import RunConfig

    for task, kept in (("improve", ["b", "c"]), ("attack", ["a", "b"])):
        config = BenchConfig(RunConfig(task=task, seeds=(0, 1), budget=3), out=str(tmp_path))
        conn = storage.open_db(tmp_path / f"{task}.sqlite", config.settings())
        scores = {"a": [0.80, 0.84], "b": [0.85, 0.85], "c": [0.9, 1.0]}
        calls = []
        score = lambda config, prompts: calls.append(prompts) or {p: scores[p] for p in prompts}  # noqa: E731
        assert _select(conn, config, ["a", "b", "c"], 0.85, score) == kept
        assert _select(conn, config, ["a", "b", "c"], 0.85, score) == kept
        assert calls == [["a", "b", "c"]]  # stored scores are not computed again


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["empty", "missing", "bad-json", "no-prompt-field", "algo", "task", "executor", "old-backend-name", "llm", "ray-address"])
def test_bad_input_exits_2_with_a_message(case, inputs, tmp_path):
    root, common = inputs
    prompts = root / "prompts.txt"
    extra = []
    if case == "empty":
        prompts = tmp_path / "empty.txt"
        prompts.write_text("\n  \n")
        expected = "holds no prompt"
    elif case == "missing":
        prompts, expected = tmp_path / "nope.txt", "does not exist"
    elif case == "bad-json":
        prompts = tmp_path / "p.json"
        prompts.write_text('["a red circle",')
        expected = "not valid JSON"
    elif case == "no-prompt-field":
        prompts = tmp_path / "p.jsonl"
        prompts.write_text('{"text": "a red circle"}\n')
        expected = "\"prompt\" field"
    elif case == "algo":
        extra, expected = ["--algos", "random,sgd"], "'sgd'"
    elif case == "task":
        extra, expected = ["--task", "explain"], "--task"
    elif case == "executor":
        extra, expected = ["--executor", "spark"], "--executor 'spark' is not known; choose one of local, ray."
    elif case == "old-backend-name":
        extra, expected = ["--backend", "spark"], "--backend is deprecated: it is now --executor (--executor spark). error: --executor 'spark' is not known"
    elif case == "llm":
        common = common[2:]  # no --space: each prompt's space would be built by the llm source
        extra, expected = ["--space-source", "llm"], "bench calls no LLM endpoint"
    else:
        pytest.importorskip("ray")
        extra, expected = ["--executor", "ray", "--ray-address", f"127.0.0.1:{closed_port()}"], "does not answer"
    code, err = run_cli("bench", prompts, "--out", tmp_path / "out", *common, *extra)
    assert code == 2 and expected in " ".join(err.split()), err
    assert "Traceback" not in err


def test_prompt_files_json_and_jsonl(tmp_path):
    from dpodiff.bench.prompts import read_prompts

    (tmp_path / "a.json").write_text(json.dumps(["a cat", {"prompt": "a dog", "id": 3}, "a  cat"]))
    (tmp_path / "b.jsonl").write_text('{"prompt": "a dog"}\n\n"a cat"\n')
    (tmp_path / "c.txt").write_text("# comment\na dog\n\na cat\n")
    assert read_prompts(tmp_path / "a.json").prompts == ["a cat", "a dog"]
    assert read_prompts(tmp_path / "a.json").duplicates == ["a cat"]
    assert read_prompts(tmp_path / "b.jsonl").prompts == ["a dog", "a cat"]
    assert read_prompts(tmp_path / "c.txt").prompts == ["a dog", "a cat"]


def test_eval_seeds_judge_the_choice_on_seeds_nobody_chose_with(tmp_path):
    """On the shapes world (it has a judge): the original, the chosen prompt and the other possible picks are
    judged on evaluation seeds disjoint from the search's and the validation's, and the summary's *_eval
    columns are those verdicts' shares; `dpodiff generate` on the same seeds gives the same verdicts."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle above a blue square\n")
    out = tmp_path / "out"
    code, err = run_cli("bench", prompts, "--out", out, "--algos", "random", "--budget", 4, "--seeds", 2, "--steps", 6,
                        "--validate", "2,2", "--eval-seeds", 3)
    assert code == 0, err
    (run,) = rows(out / "results.sqlite", "SELECT * FROM runs")
    result = json.loads((out / run["run_dir"] / "result.json").read_text())
    held_out = result["held_out"]
    assert len(held_out["seeds"]) == 3 and not set(held_out["seeds"]) & set(result["image_seeds"])
    assert result["image_seeds"] == [0, 1, 2, 3] and result["selection"]["seeds"] == [2, 3]
    by_role = {role: c for c in held_out["candidates"] for role in c["roles"]}
    assert {"original", "chosen", "argmin", "finalist", "judge_best"} <= set(by_role)
    assert by_role["original"]["index"] == 0 and by_role["chosen"]["index"] == result["selection"]["winner"]
    assert len(by_role["original"]["judged"]) == 3
    before, after = by_role["original"]["judged"], by_role["chosen"]["judged"]
    assert run["judge_before_eval"] == pytest.approx(sum(before) / 3) and run["judge_after_eval"] == pytest.approx(sum(after) / 3)
    assert run["repaired_eval"] == pytest.approx(sum(not b and a for b, a in zip(before, after)) / 3)
    assert run["broken_eval"] == pytest.approx(sum(b and not a for b, a in zip(before, after)) / 3)
    assert run["judge_after_eval"] == pytest.approx(run["judge_before_eval"] + run["repaired_eval"] - run["broken_eval"])
    with open(out / "summary.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    for column in ("judge_before_eval", "judge_after_eval", "repaired_eval", "broken_eval"):
        assert float(row[column]) == pytest.approx(run[column], rel=1e-5)
    chosen = by_role["chosen"]
    code, err = run_cli("generate", chosen["prompt"], "--negative-prompt", chosen["negative_prompt"], "--loss-prompt", result["prompt"],
                        "--seeds", ",".join(map(str, held_out["seeds"])), "--steps", 6, "--out", tmp_path / "check")
    assert code == 0, err
    again = json.loads((tmp_path / "check" / "result.json").read_text())["images"]
    assert [r["judge"]["pass"] for r in again] == chosen["judged"]
    assert [r["loss"] for r in again] == pytest.approx(chosen["losses"], abs=1e-4)


def test_each_runs_images_say_how_they_were_made(bench_run):
    """A bench image carries the same PNG settings as one of improve: A1111's text and dpodiff's record."""
    from dpodiff.report.metadata import parse_parameters, read_metadata

    out, _ = bench_run
    run = rows(out / "results.sqlite", "SELECT * FROM runs WHERE algorithm = 'epo' ORDER BY id")[0]
    result = json.loads((out / run["run_dir"] / "result.json").read_text())
    text, data = read_metadata(out / run["run_dir"] / "best_seed1.png")
    parameters = parse_parameters(text)
    assert parameters["Steps"] == "2" and parameters["Seed"] == "1" and parameters["Role"] == "best" and parameters["Task"] == "improve"
    assert data["prompt"] == result["best"]["prompt"] and data["negative_prompt"] == result["best"]["negative_prompt"]
    assert data["seed"] == 1 and data["algorithm"] == "epo" and data["original_prompt"] == run["prompt"]
    assert data["loss"] == pytest.approx(result["best"]["losses"][1])


def test_equal_cost_charges_gpo_its_measured_cost(inputs, tmp_path):
    """--equal-cost: gpo's search gets the budget less GPO's measured cost in candidates (at least 1), and the
    setting is part of the database's fingerprint."""
    root, common = inputs
    (root / "one.txt").write_text(PROMPTS[0] + "\n")
    common = [c if c != "random,epo" else "gpo" for c in common]
    code, err = run_cli("bench", root / "one.txt", "--out", tmp_path / "plain", *common)
    assert code == 0, err
    code, err = run_cli("bench", root / "one.txt", "--out", tmp_path / "charged", *common, "--equal-cost")
    assert code == 0, err
    (plain,) = rows(tmp_path / "plain" / "results.sqlite", "SELECT * FROM runs")
    (charged,) = rows(tmp_path / "charged" / "results.sqlite", "SELECT * FROM runs")
    result = json.loads((tmp_path / "charged" / charged["run_dir"] / "result.json").read_text())
    spent = math.ceil(result["gpo"]["equivalent_images_measured"] / 2)
    assert plain["evaluations"] == 3 and spent >= 1
    assert charged["evaluations"] == result["budget"] == max(1, 3 - spent)
    code, err = run_cli("bench", root / "one.txt", "--out", tmp_path / "plain", *common, "--equal-cost")
    assert code == 2 and "other settings" in err and "charge_gpo" in err
