"""The negative prompt library (NPLib): generic terms for what nobody wants in an image.

Curated for this project (assets/nplib.json) and grouped into a few slots, so
that one candidate takes at most one term from each theme.

The generic terms ("jpeg artifacts", "extra limbs") suit models trained on photographs and art. A model
folder may carry its own library, `negative_prompts.json` in the same format (plus an optional "name"),
which replaces the generic one for that model: its slots' source is "nplib:NAME" instead of "nplib".
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from dpodiff.errors import UsageError
from dpodiff.spaces.space import Slot

NPLIB_PATH = Path(__file__).resolve().parent.parent / "assets" / "nplib.json"
MODEL_LIBRARY_FILE = "negative_prompts.json"
LIBRARY_EXAMPLE = '{"name": "my-model", "slots": {"colours": ["red", "blue"], "shapes": ["circle", "square"]}}'


@dataclass(frozen=True)
class NegativeLibrary:
    """Negative-prompt terms grouped in slots (theme -> terms)."""

    name: str  # "generic", or a model's library's name
    slots: dict[str, tuple[str, ...]]
    path: str | None = None  # the file it was read from

    @property
    def source(self) -> str:
        """The source its slots record in a space: "nplib" for the generic library, "nplib:NAME" for a model's."""
        return "nplib" if self.name == "generic" else f"nplib:{self.name}"


@functools.lru_cache(maxsize=1)
def library() -> dict[str, tuple[str, ...]]:
    data = json.loads(NPLIB_PATH.read_text(encoding="utf-8"))
    return {name: tuple(terms) for name, terms in data["slots"].items()}


def generic_library() -> NegativeLibrary:
    return NegativeLibrary("generic", library(), str(NPLIB_PATH))


def model_library(folder: Path | str | None) -> NegativeLibrary | None:
    """The library in a model folder's negative_prompts.json, or None when it has none (the generic one is used)."""
    path = None if folder is None else Path(folder) / MODEL_LIBRARY_FILE
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"it is not readable JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("slots"), dict) or not data["slots"]:
        raise _bad(path, 'it has no "slots" object with at least one slot')
    if extra := sorted(set(data) - {"slots", "name", "about"}):
        raise _bad(path, f"unknown key {extra[0]!r}")
    name = data.get("name", Path(folder).name)
    if not isinstance(name, str) or not name.strip() or name.strip() == "generic":
        raise _bad(path, f'"name" {name!r} must be a non-empty text other than "generic"')
    slots = {}
    for slot, terms in data["slots"].items():
        if not slot.strip() or not isinstance(terms, list) or not terms or not all(isinstance(t, str) and t.strip() for t in terms):
            raise _bad(path, f"slot {slot!r} must name a non-empty list of non-empty terms")
        slots[slot.strip()] = tuple(t.strip() for t in terms)
    return NegativeLibrary(name.strip(), slots, str(path))


def nplib_slots(per_slot: int | None = None, library: NegativeLibrary | None = None) -> list[Slot]:
    """One negative slot per theme of `library` (default: the generic one: quality, artefacts, anatomy, composition, ...),
    `per_slot` terms each."""
    library = library or generic_library()
    return [Slot(f"nplib:{name}", list(terms[:per_slot] if per_slot else terms), library.source) for name, terms in library.slots.items()]


def _bad(path: Path, problem: str) -> UsageError:
    return UsageError(f"The model's negative-prompt library {path} is malformed: {problem}. It must look like {LIBRARY_EXAMPLE} "
                      "(the format of dpodiff's assets/nplib.json). Fix the file or remove it to use the generic library.")
