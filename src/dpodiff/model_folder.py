"""What a model folder says about itself besides its weights, read when the model loads.

- `dpodiff.json`: the generation settings the model is best at,
  `{"recommended": {"steps": 25, "guidance": 3.0, "scheduler": null}}`. Each setting may be null or left
  out: then dpodiff's default (50 steps, guidance 7.5, the model's own scheduler). A setting the user gives
  wins over the model's; `RunConfig.resolved` puts the three together.
- `negative_prompts.json`: the model's own negative-prompt library, replacing the generic one
  (see spaces/nplib.py).

Only a local folder is read (a path, or a pipeline object whose `name_or_path` is one); a model named by
hub id has neither file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

from dpodiff.defaults import MAX_STEPS, SCHEDULERS
from dpodiff.errors import UsageError

SETTINGS_FILE = "dpodiff.json"
SETTINGS_EXAMPLE = '{"recommended": {"steps": 25, "guidance": 3.0, "scheduler": null}}'
OPTIONS = {"steps": "--steps", "guidance": "--guidance", "scheduler": "--scheduler"}


@dataclass(frozen=True)
class Recommended:
    """A model's recommended generation settings; None: it recommends nothing for that one."""

    steps: int | None = None
    guidance: float | None = None
    scheduler: str | None = None  # a CLI name (registry.SCHEDULERS)


def model_folder(model: str | Path | None) -> Path | None:
    """The local folder of a model as the CLI names it (None: the shapes world); None for a hub id."""
    if model is None:
        from dpodiff.shapes import PIPELINE_DIR

        return PIPELINE_DIR
    path = Path(model).expanduser()
    return path if str(model) and path.is_dir() else None


def pipeline_folder(pipe) -> Path | None:
    """The local folder a loaded pipeline came from (its `name_or_path`), or None."""
    name = getattr(pipe, "name_or_path", None)
    return model_folder(name) if isinstance(name, (str, Path)) and str(name) else None


def read_recommended(folder: Path | None) -> Recommended:
    """The recommendation in `folder`/dpodiff.json; an empty one when there is no such file."""
    path = None if folder is None else Path(folder) / SETTINGS_FILE
    if path is None or not path.is_file():
        return Recommended()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"it is not readable JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("recommended"), dict):
        raise _bad(path, 'it has no "recommended" object')
    if extra := sorted(set(data) - {"recommended", "about"}):
        raise _bad(path, f"unknown key {extra[0]!r}")
    settings = data["recommended"]
    if extra := sorted(set(settings) - {f.name for f in fields(Recommended)}):
        raise _bad(path, f"unknown setting {extra[0]!r} (known: steps, guidance, scheduler)")
    steps, guidance, scheduler = (settings.get(name) for name in ("steps", "guidance", "scheduler"))
    if steps is not None and (type(steps) is not int or not 1 <= steps <= MAX_STEPS):
        raise _bad(path, f"steps {steps!r} is not a whole number from 1 to {MAX_STEPS}")
    if guidance is not None and (type(guidance) not in (int, float) or not math.isfinite(guidance)):
        raise _bad(path, f"guidance {guidance!r} is not a number")
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise _bad(path, f"scheduler {scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    return Recommended(steps, None if guidance is None else float(guidance), scheduler)


def recommended_note(used: dict) -> str | None:
    """One line saying which settings came from the model (`RunConfig.from_model`), or None when none did."""
    if not used:
        return None
    shown = {"steps": lambda v: f"{v} steps", "guidance": lambda v: f"guidance {v:g}", "scheduler": lambda v: f"scheduler {v}"}
    settings = ", ".join(shown[name](value) for name, value in used.items())
    return f"model's recommended settings: {settings} (set {'/'.join(OPTIONS[name] for name in used)} to override)"


def _bad(path: Path, problem: str) -> UsageError:
    return UsageError(f"The model's settings file {path} is malformed: {problem}. It must look like {SETTINGS_EXAMPLE} "
                      "(each setting may be null: dpodiff's default). Fix the file or remove it.")
