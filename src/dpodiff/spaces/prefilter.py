"""The per-word pre-filter of DPO-Diff's attack: a synonym stays in the space only if the prompt with that
one swap is admissible (it meets the meaning constraint). A swap that fails alone rarely passes beside
others, so without it GPO learns weights over swaps the constraint later rejects and EPO stalls on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from dpodiff.spaces.space import SearchSpace


def prefilter(space: SearchSpace, admissible: Callable[[str], bool]) -> tuple[SearchSpace, list[dict]]:
    """The space with only the synonyms whose one-word swap is `admissible`, and what was dropped
    ([{"word", "choice", "prompt"}]); a span left with no choice is dropped."""
    spans, dropped = [], []
    for i, span in enumerate(space.positive):
        kept = span.choices[:1]
        for j, choice in enumerate(span.choices[1:], start=1):
            text, _ = space.render([j if k == i else 0 for k in range(len(space.positive))], negative=False)
            if admissible(text):
                kept.append(choice)
            else:
                dropped.append({"word": span.original, "choice": choice, "prompt": text})
        if len(kept) > 1:
            spans.append(replace(span, choices=kept))
    return replace(space, positive=spans), dropped
