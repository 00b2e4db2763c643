"""The shapes world's model card: rendered from metrics.json through its template (card.md.j2), it is the
committed weights/README.md; a missing metric fails loudly; the template ships in the wheel."""

import ast
import copy
import fnmatch
import json
import shutil
from pathlib import Path

import jinja2
import pytest

from dpodiff.shapes import WEIGHTS_DIR, card

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "dpodiff"


@pytest.fixture()
def metrics() -> dict:
    return json.loads((WEIGHTS_DIR / "metrics.json").read_text())


def test_committed_metrics_give_the_committed_card(metrics):
    """Whoever edits the template or the metrics sees the card change here, not in the next release."""
    assert card.render_card(metrics) == (WEIGHTS_DIR / "README.md").read_text()


def test_write_card_writes_what_it_returns(metrics, tmp_path, monkeypatch):
    for log in WEIGHTS_DIR.glob("critic*_steps.json"):
        shutil.copy(log, tmp_path)
    monkeypatch.setattr(card, "WEIGHTS_DIR", tmp_path)  # no weights here: the sizes table is empty
    text = card.write_card(metrics)
    assert (tmp_path / "README.md").read_text() == text
    assert "| file | size |\n|---|---|\n\n## Vocabulary\n" in text
    assert "`critic_more`: 800 steps of batch 128 (planned 800),\n" in text


def test_optional_metrics_leave_their_sections_out(metrics):
    for key in ("training", "critic", "negatives", "negatives_perp", "improvement_probe"):
        metrics.pop(key)
    del metrics["generation"]["quality_negative"]
    text = card.render_card(metrics)
    for gone in ("Wall time of each stage", "UNet: ", "### The scorer as a critic", "With the negative prompt",
                 "### Does a negative prompt push away", "### Can a negative prompt repair"):
        assert gone not in text
    assert "| right caption among 20 random | 5% | 97.7% | - |\n" in text
    assert "| images with one wrong shape fail | 100.0% |\n\n" in text
    assert text.endswith("\n") and not text.endswith("\n\n")


@pytest.mark.parametrize("path", [("judge_ground_truth",), ("scorer_retrieval",), ("generation",), ("sampling_time",),
                                  ("judge_ground_truth", "wrong_colour_fail"), ("generation", "by_guidance"),
                                  ("sampling_time", "single_image_50_steps_s"), ("scorer_retrieval", "random20")])
def test_a_missing_required_metric_names_itself(metrics, path):
    broken = copy.deepcopy(metrics)
    parent = broken
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    with pytest.raises(KeyError, match=path[-1]):
        card.render_card(broken)


def test_the_template_prints_no_missing_value_as_nothing(metrics):
    """StrictUndefined: a value the template names but is not given raises instead of leaving a blank."""
    template = card.environment().get_template(card.TEMPLATE)
    values = card.card_values(metrics)
    assert template.render(values) == card.render_card(metrics)
    del values["sampling"]["single_50"]
    with pytest.raises(jinja2.UndefinedError, match="single_50"):
        template.render(values)
    with pytest.raises(jinja2.UndefinedError, match="judge"):
        template.render({k: v for k, v in card.card_values(metrics).items() if k != "judge"})


def test_the_template_ships_as_package_data():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    template = (SRC / "shapes" / card.TEMPLATE).relative_to(SRC).as_posix()
    assert any(fnmatch.fnmatch(template, p) for p in pyproject["tool"]["setuptools"]["package-data"]["dpodiff"])


def test_no_function_of_the_card_runs_over_60_lines():
    tree = ast.parse(Path(card.__file__).read_text(encoding="utf-8"))
    long = {f.name: f.end_lineno - f.lineno + 1 for f in ast.walk(tree)
            if isinstance(f, ast.FunctionDef) and f.end_lineno - f.lineno >= 60}
    assert not long
