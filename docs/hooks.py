"""MkDocs hooks (mkdocs.yml: hooks): pages built from the repository itself, so that they cannot drift.

- `<!-- options: COMMAND -->` on a line of its own becomes the table of that `dpodiff` command's options,
  read from the CLI's own click definitions (`typer.main.get_command(dpodiff.cli.app)`); `dpodiff` names the
  options that come before the command. A page that names no table for some command fails the build, so a
  new command cannot go undocumented.
- `<!-- include: PATH -->` becomes the text of PATH, relative to the repository root (the shapes world's
  model card, which `dpodiff.shapes.card` writes).
- `<!-- registry: NAME -->` becomes the table of one extension point's entries (`dpodiff.registry.NAME`):
  each name, the implementation it loads and its help line.

The tables describe the CLI of this checkout (its `src/` comes first on the path), not of whatever dpodiff
is installed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = re.compile(r"^<!-- options: ([\w-]+) -->$", re.M)
INCLUDE = re.compile(r"^<!-- include: (\S+) -->$", re.M)
REGISTRY = re.compile(r"^<!-- registry: (\w+) -->$", re.M)


def _from_checkout() -> None:
    src = str(ROOT / "src")
    if sys.path[0] != src:
        sys.path.insert(0, src)


def cli():
    """The `dpodiff` click group, imported from this checkout's src/."""
    _from_checkout()
    import typer

    from dpodiff.cli import app

    return typer.main.get_command(app)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _type(param, ctx) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    shown = param.display_type(ctx) if hasattr(param, "display_type") else param.type.name
    shown = re.sub(r"^list\[(\w+)\]$", r"\1", shown.strip("<>")).removesuffix(" range")
    return {"str": "text"}.get(shown, shown) + (", repeatable" if param.multiple else "")


def _default(param) -> str:
    if param.required:
        return "required"
    if getattr(param, "is_flag", False):
        return "on" if param.default else "off"
    if param.show_default is False:
        return "see text"
    if param.default is None or param.default == []:
        return "none"
    return f"`{param.default}`"


def _help(param) -> str:
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    bounds = [f"at least {low}"] * (low is not None) + [f"at most {high}"] * (high is not None)
    return _cell((param.help or "") + (f" ({', '.join(bounds)})" if bounds else ""))


def options_table(name: str) -> str:
    """The markdown table of one command's arguments and options ("dpodiff": the group's own)."""
    group = cli()
    command = group if name == "dpodiff" else group.commands.get(name)
    if command is None:
        raise PluginError(f"<!-- options: {name} -->: dpodiff has no command {name!r}; its commands: {', '.join(group.commands)}")
    ctx = command.context_class(command, info_name=name)
    rows = ["| option | type | default | what it does |", "|---|---|---|---|"]
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            names = f"`{param.name.upper()}`"
        else:
            names = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
        rows.append(f"| {names} | {_type(param, ctx)} | {_default(param)} | {_help(param)} |")
    return "\n".join(rows)


def registry_table(name: str) -> str:
    """The markdown table of one registry of dpodiff.registry."""
    _from_checkout()
    from dpodiff import registry

    table = getattr(registry, name, None)
    if not isinstance(table, registry.Registry):
        raise PluginError(f"<!-- registry: {name} -->: dpodiff.registry has no registry {name!r}")
    rows = ["| name | implementation | what it is |", "|---|---|---|"]
    rows += [f"| `{e.name}` | `{e.target}` | {_cell(e.help)} |" for e in table.values()]
    return "\n".join(rows)


def on_page_markdown(markdown: str, page, config, files) -> str:
    named = OPTIONS.findall(markdown)
    if named:
        missing = [c for c in ["dpodiff", *cli().commands] if c not in named]
        if missing:
            raise PluginError(f"{page.file.src_uri} documents the options of some commands but not of {', '.join(missing)}: "
                              "add an `<!-- options: COMMAND -->` line for each")
    markdown = OPTIONS.sub(lambda m: options_table(m.group(1)), markdown)
    markdown = REGISTRY.sub(lambda m: registry_table(m.group(1)), markdown)

    def include(match: re.Match) -> str:
        path = ROOT / match.group(1)
        if not path.is_file():
            raise PluginError(f"{page.file.src_uri}: <!-- include: {match.group(1)} -->: no such file")
        return path.read_text(encoding="utf-8")

    return INCLUDE.sub(include, markdown)
