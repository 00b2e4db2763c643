"""The two tasks as data: what is searched, which way the loss goes, whether meaning is constrained."""

from __future__ import annotations

from dataclasses import dataclass

from dpodiff.errors import UsageError


@dataclass(frozen=True)
class Task:
    name: str
    sign: int  # the optimiser minimises sign * loss
    search_positive: bool  # substitute words of the prompt
    search_negative: bool  # choose a negative prompt
    constrained: bool  # candidates must keep the prompt's meaning


def make_task(name: str, positive: bool = False) -> Task:
    """improve: minimise the loss with a negative prompt (and, with positive=True, synonyms too);
    attack: maximise it with synonyms, under the similarity constraint."""
    if name == "improve":
        return Task("improve", 1, search_positive=positive, search_negative=True, constrained=False)
    if name == "attack":
        return Task("attack", -1, search_positive=True, search_negative=False, constrained=True)
    raise UsageError(f"task {name!r} is not known; use improve or attack.")
