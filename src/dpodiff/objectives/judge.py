"""Judges: programmatic checks of whether an image shows what its caption says.

A model folder names its judge in `dpodiff_judge.json` ({"judge": "module:function"});
the function takes (caption, PIL image) and returns a verdict with `to_dict()`, or
None when it cannot read the caption.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path

from dpodiff.errors import UsageError

JUDGE_FILE = "dpodiff_judge.json"

Judge = Callable  # (caption: str, image: PIL.Image.Image) -> verdict | None


def find_judge(model_path: str | Path | None) -> Judge | None:
    """The judge named by a model folder, or None when the model has none."""
    if model_path is None:
        return None
    marker = Path(model_path) / JUDGE_FILE
    if not marker.is_file():
        return None
    try:
        target = json.loads(marker.read_text())["judge"]
        module_name, func_name = target.split(":")
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise UsageError(f"{marker} must hold {{\"judge\": \"module:function\"}}.") from None
    if not module_name.startswith("dpodiff."):
        raise UsageError(f"{marker} names {target!r}; only judges shipped with dpodiff (dpodiff.*) are loaded.")
    try:
        judge = getattr(importlib.import_module(module_name), func_name)
    except ImportError as e:
        raise UsageError(f"{marker} names the judge {target!r}, but its module cannot be imported ({e}). Fix the file or remove it.") from None
    except AttributeError:
        raise UsageError(f"{marker} names the judge {target!r}, but {module_name} has no {func_name!r}. Fix the file or remove it.") from None
    if not callable(judge):
        raise UsageError(f"{marker} names {target!r}, which is not a function. Fix the file or remove it.")
    return judge


def judge_images(judge: Judge | None, caption: str, images) -> list[dict] | None:
    """Verdict dicts (each with a boolean `pass`) for each image; None when there is no judge or verdict."""
    if judge is None:
        return None
    verdicts = [judge(caption, image) for image in images]
    if any(v is None for v in verdicts):
        return None
    return [v.to_dict() for v in verdicts]
