"""The negative prompt library (NPLib): generic terms for what nobody wants in an image.

Curated for this project (assets/nplib.json) and grouped into a few slots, so
that one candidate takes at most one term from each theme.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from dpodiff.spaces.space import Slot

NPLIB_PATH = Path(__file__).resolve().parent.parent / "assets" / "nplib.json"


@functools.lru_cache(maxsize=1)
def library() -> dict[str, tuple[str, ...]]:
    data = json.loads(NPLIB_PATH.read_text(encoding="utf-8"))
    return {name: tuple(terms) for name, terms in data["slots"].items()}


def nplib_slots(per_slot: int | None = None) -> list[Slot]:
    """One negative slot per theme (quality, artefacts, anatomy, composition, ...), `per_slot` terms each."""
    return [Slot(f"nplib:{name}", list(terms[:per_slot] if per_slot else terms), "nplib") for name, terms in library().items()]
