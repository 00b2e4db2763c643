"""Judges: programmatic checks of whether an image shows what its caption says.

A model folder names its judge in `dpodiff_judge.json` ({"judge": "module:function"});
the function takes (caption, PIL image) and returns a verdict with `to_dict()`, or
None when it cannot read the caption. The same file may name a reader ({"reader": "module:function"}):
caption -> what it means (equal for two wordings of one scene), or None; with it an attack's rewording
is checked to mean what the prompt means (the shapes world's grammar parses both), and a "wordings"
function (word -> other words for it the model's world knows) adds those to the synonyms of a space.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path

from dpodiff.errors import UsageError

JUDGE_FILE = "dpodiff_judge.json"

Judge = Callable  # (caption: str, image: PIL.Image.Image) -> verdict | None
Reader = Callable  # (caption: str) -> what it means, comparable with ==, or None when it cannot read it


def find_judge(model_path: str | Path | None) -> Judge | None:
    """The judge named by a model folder, or None when the model has none."""
    return _named(model_path, "judge", required=True)


def find_reader(model_path: str | Path | None) -> Reader | None:
    """The reader a model folder names beside its judge (`"reader": "module:function"`), or None."""
    return _named(model_path, "reader", required=False)


def find_wordings(model_path: str | Path | None) -> Callable | None:
    """The other wordings of a word that the model's world knows (`"wordings": "module:function"`), or None."""
    return _named(model_path, "wordings", required=False)


def _named(model_path: str | Path | None, role: str, required: bool) -> Callable | None:
    if model_path is None:
        return None
    marker = Path(model_path) / JUDGE_FILE
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
        if not required and role not in data:
            return None
        target = data[role]
        module_name, func_name = target.split(":")
    except (ValueError, KeyError, TypeError, AttributeError, json.JSONDecodeError):
        raise UsageError(f"{marker} must hold {{\"judge\": \"module:function\"}} (and optionally \"reader\" and \"wordings\" the same way).") from None
    if not module_name.startswith("dpodiff."):
        raise UsageError(f"{marker} names {target!r}; only functions shipped with dpodiff (dpodiff.*) are loaded.")
    try:
        found = getattr(importlib.import_module(module_name), func_name)
    except ImportError as e:
        raise UsageError(f"{marker} names the {role} {target!r}, but its module cannot be imported ({e}). Fix the file or remove it.") from None
    except AttributeError:
        raise UsageError(f"{marker} names the {role} {target!r}, but {module_name} has no {func_name!r}. Fix the file or remove it.") from None
    if not callable(found):
        raise UsageError(f"{marker} names {target!r}, which is not a function. Fix the file or remove it.")
    return found


def same_meaning(reader: Reader | None, original: str, text: str) -> str | None:
    """Whether a rewording means what the original says, by the model's reader: "verified" (it reads as the
    same scene), "changed" (another scene), "unparsed" (the reader cannot read it); None without a reader
    or when the reader cannot read the original either."""
    if reader is None:
        return None
    meant = reader(original)
    if meant is None:
        return None
    read = reader(text)
    return "unparsed" if read is None else "verified" if read == meant else "changed"


def judge_images(judge: Judge | None, caption: str, images) -> list[dict] | None:
    """Verdict dicts (each with a boolean `pass`) for each image; None when there is no judge or verdict."""
    if judge is None:
        return None
    verdicts = [judge(caption, image) for image in images]
    if any(v is None for v in verdicts):
        return None
    return [v.to_dict() for v in verdicts]
