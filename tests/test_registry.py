"""The extension points' tables: every entry loads, is what its line says, and the CLI, the UI and the
docs list every name from them."""

import inspect
import re

import pytest
import torch

from dpodiff import registry
from dpodiff.backends.base import Backend
from dpodiff.errors import UsageError
from dpodiff.objectives.scorers import check_scorer
from dpodiff.optimizers import make_optimizer
from dpodiff.optimizers.base import Optimizer
from dpodiff.registry import EXECUTORS, FAMILIES, OPTIMIZERS, SCHEDULERS, SCORERS, SPACE_SOURCES, Registry

ALL = [table for table in vars(registry).values() if isinstance(table, Registry)]


def test_every_table_is_checked_here():
    assert {t.option for t in ALL} == {r.option for r in (EXECUTORS, FAMILIES, OPTIMIZERS, SCHEDULERS, SCORERS, SPACE_SOURCES)}


@pytest.mark.parametrize("table", ALL, ids=lambda t: t.option)
def test_every_entry_loads_and_has_a_help_line(table):
    for entry in table.values():
        assert callable(entry.load()), entry
        assert entry.help and entry.help == entry.help.strip()


def test_an_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(UsageError, match=r"--algo 'annealing' is not known; choose one of random, epo, gpo, hybrid\."):
        OPTIMIZERS["annealing"]
    with pytest.raises(UsageError, match="--source 'bing' is not known"):
        SPACE_SOURCES.check("bing", "--source")


def test_each_optimizer_is_the_one_its_name_says():
    logits = [torch.tensor([0.0, 2.0, 0.0]), torch.tensor([3.0, 0.0])]
    for entry in OPTIMIZERS.values():
        cls = entry.load()
        assert issubclass(cls, Optimizer) and cls.name == entry.name
        made = make_optimizer(entry.name, [3, 2], seed=0, logits=logits)
        assert type(made) is cls and made.ask()
        if entry.white_box:
            with pytest.raises(ValueError, match="logits"):
                make_optimizer(entry.name, [3, 2])
    # the hybrid draws its first generation from GPO's distribution, led by the argmax only when asked
    hybrid = make_optimizer("hybrid", [3, 2], logits=logits, argmax_first=True)
    assert hybrid.ask()[0] == (1, 0) and hybrid.settings()["init"] == "custom"
    assert make_optimizer("hybrid", [3, 2], logits=logits).settings()["first"] is None


def test_each_family_serves_its_own_pipeline():
    classes = [entry.load() for entry in FAMILIES.values()]
    assert all(issubclass(c, Backend) for c in classes)
    assert [c.family for c in classes] == list(FAMILIES)
    assert len({c.pipeline_class for c in classes}) == len(classes)


def test_each_executor_runs_scores_and_closes():
    for entry in EXECUTORS.values():
        cls = entry.load()
        assert all(callable(getattr(cls, name, None)) for name in ("run", "score", "close"))
        assert list(inspect.signature(cls).parameters) == ["config", "address"]


def test_each_scheduler_is_a_diffusers_scheduler_with_an_a1111_name():
    for entry in SCHEDULERS.values():
        cls = entry.load()
        assert hasattr(cls, "from_config") and hasattr(cls, "set_timesteps") and entry.a1111


def test_each_scorer_kind_has_an_example_and_a_check(tmp_path):
    for entry in SCORERS.values():
        assert entry.example.startswith(f"{entry.name}:")
        assert list(inspect.signature(entry.load()).parameters)[:4] == ["path", "device", "dtype", "name"]
        assert bool(entry.check) != bool(entry.download), entry  # checked by its own function, or by the file's presence
        with pytest.raises(UsageError):  # nothing at the path: refused before anything loads
            check_scorer(f"{entry.name}:{tmp_path / 'absent'}")


def test_each_space_source_takes_the_arguments_its_kind_says():
    for entry in SPACE_SOURCES.values():
        params = list(inspect.signature(entry.load()).parameters)
        assert params == (["res", "prompt", "asked", "kind", "per_word"] if entry.per_prompt else ["w", "kind", "res", "meant", "colours"])


def test_help_texts_list_every_name():
    from typer.testing import CliRunner

    from dpodiff.cli import app

    for command, table, described in (("improve", OPTIMIZERS, True), ("improve", SPACE_SOURCES, True), ("improve", FAMILIES, True),
                                      ("improve", SCORERS, False), ("generate", SCHEDULERS, False), ("bench", OPTIMIZERS, False), ("bench", EXECUTORS, True),
                                      ("space", SPACE_SOURCES, True)):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "250"})
        shown = " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())  # rich's frame, around wrapped lines
        assert result.exit_code == 0, result.output
        assert all((entry.help if described else entry.name) in shown for entry in table.values()), (command, table.option)
