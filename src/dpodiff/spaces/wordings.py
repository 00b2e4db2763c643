"""The model's own wordings added to a space's synonyms: a model world that knows its words (the shapes
world's grammar knows "azure" and "cobalt" for blue, "disc" for circle) offers them beside the offline
sources' synonyms, each one its reader verifies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from dpodiff.spaces.space import SearchSpace, Span
from dpodiff.spaces.words import content_words, match_case


def add_wordings(space: SearchSpace, wordings: Callable[[str], list[str]]) -> SearchSpace:
    """`space` with each prompt word's other wordings (`wordings(word)`) added to its synonym span, or in
    a new span (source "model") where the word had none."""
    spans = {(s.start, s.end): s for s in space.positive}
    taken = [(s.start, s.end) for s in space.positive]
    for w in content_words(space.prompt):
        extra = wordings(w.text)
        span = spans.get((w.start, w.end))
        if not extra or (span is None and any(a < w.end and w.start < b for a, b in taken)):
            continue
        choices = span.choices if span else [w.text]
        known = {c.lower() for c in choices}
        added = [match_case(w.text, x) for x in extra if x.lower() not in known]
        if added:
            spans[w.start, w.end] = Span(w.start, w.end, choices + added, span.source if span else "model")
    return replace(space, positive=sorted(spans.values(), key=lambda s: s.start))
