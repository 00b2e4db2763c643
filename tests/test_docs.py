"""The documentation site builds in strict mode, and every option of every command is in its generated table.

`mkdocs build --strict` fails on a warning: a broken link or anchor, a page missing from the navigation
or a navigation entry without its page, a docstring the API page cannot render, a command with no
options table (docs/hooks.py). The options tables are generated from the CLI at build time, so they
cannot be out of date; the test still reads the built page for every option of every command.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import typer

from dpodiff.cli import app

ROOT = Path(__file__).resolve().parent.parent
# the section of docs/tasks.md that holds each command's table: its heading's id
SECTIONS = {"dpodiff": "options-before-the-command"}


def _build(site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # the hook is imported from docs/: leave no __pycache__ there
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                           "--site-dir", str(site)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _section(page: str, anchor: str) -> str:
    """The HTML from the h2 with this id to the next h2."""
    start = page.find(f'id="{anchor}"')
    assert start >= 0, f"docs/tasks.md has no section #{anchor}"
    end = page.find("<h2", start)
    return page[start:] if end < 0 else page[start:end]


def test_site_builds_strict_and_lists_every_option(tmp_path):
    site = tmp_path / "site"
    run = _build(site)
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    for page in ("index", "getting-started", "tasks", "models", "search-spaces", "method", "selection", "benchmarks",
                 "hardware", "shapes-world", "model-card", "api", "extending"):
        assert (site / page / "index.html" if page != "index" else site / "index.html").is_file(), page
    for image in ("ui.png", "improve_quality.png", "budget_sweep.png"):
        assert (site / image).is_file(), image

    tasks = (site / "tasks" / "index.html").read_text(encoding="utf-8")
    group = typer.main.get_command(app)
    commands = {"dpodiff": group, **group.commands}
    assert {"improve", "attack", "generate", "space", "inspect", "ui", "bench"} <= set(commands)
    missing = []
    for name, command in commands.items():
        section = _section(tasks, SECTIONS.get(name, name))
        assert "<table>" in section, f"no options table under the {name} section"
        for param in [p for p in command.params if not getattr(p, "hidden", False)]:  # a hidden option is an old spelling
            names = [param.name.upper()] if param.param_type_name == "argument" else [*param.opts, *param.secondary_opts]
            missing += [f"{name} {n}" for n in names if f"<code>{html.escape(n)}</code>" not in section]
            if param.help:  # the help text too, as the CLI prints it (first words, whitespace folded)
                words = " ".join(param.help.split()[:6])
                if html.escape(words, quote=False) not in re.sub(r"\s+", " ", section):
                    missing.append(f"{name} {param.name}: help {words!r}")
    assert not missing, f"options missing from the built docs/tasks.md: {missing}"

    card = (site / "model-card" / "index.html").read_text(encoding="utf-8")
    assert "Measured quality" in card  # src/dpodiff/shapes/weights/README.md, included at build time
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert "Search a better negative prompt" in api  # optimize()'s docstring
