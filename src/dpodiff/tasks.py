"""The two tasks as data: what is searched, which way the loss goes, whether meaning is constrained.

Everything that differs between improve and attack is a field here; no other module branches on
a task's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from dpodiff.errors import UsageError

TASKS = ("improve", "attack")


@dataclass(frozen=True)
class Task:
    name: str
    sign: int  # the optimiser minimises sign * loss
    search_positive: bool  # substitute words of the prompt
    search_negative: bool  # choose a negative prompt
    constrained: bool  # candidates must keep the prompt's meaning
    searched: str  # what the search space offers, for messages
    hard_prompt: str  # which prompts bench --select keeps: ">=" (loss at least the threshold) or "<="

    def sizes(self, space) -> list[int]:
        return space.sizes(self.search_positive, self.search_negative)

    def render(self, space, candidate) -> tuple[str, str]:
        return space.render(candidate, self.search_positive, self.search_negative)

    def is_hard(self, loss: float, threshold: float) -> bool:
        return loss >= threshold if self.hard_prompt == ">=" else loss <= threshold


def make_task(name: str, positive: bool = False) -> Task:
    """improve: minimise the loss with a negative prompt (and, with positive=True, synonyms too);
    attack: maximise it with synonyms, under the similarity constraint."""
    if name == "improve":
        searched = "negative slots" + (" or synonym spans" if positive else "")
        return Task("improve", 1, search_positive=positive, search_negative=True, constrained=False, searched=searched, hard_prompt=">=")
    if name == "attack":
        return Task("attack", -1, search_positive=True, search_negative=False, constrained=True,
                    searched="synonym spans (positive part)", hard_prompt="<=")
    raise UsageError(f"--task {name!r} is not known; use one of {', '.join(TASKS)}.")
