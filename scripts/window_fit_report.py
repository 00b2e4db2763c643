"""How much the token window costs the improve space of the prompts in prompts/varied.txt.

Builds each prompt's improve space with synonym spans (offline sources, no text encoder),
fits it to the window of SD (77 tokens) and to a small model's 20 (the shapes world's before
its release 2), and prints
how often fitting was needed and what it removed, so the cost of fitting is known.

    .venv/bin/python scripts/window_fit_report.py [prompts/varied.txt]
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dpodiff.errors import UsageError
from dpodiff.spaces.build import build_task_space
from dpodiff.spaces.fit import fit_space
from dpodiff.tokenizers import clip_tokenizer

WINDOWS = (77, 20)


@dataclass
class Tally:
    """What fitting did over all prompts, for one window."""

    window: int
    prompts: int = 0
    fitted: int = 0  # prompts whose space needed fitting
    failed: list[str] = field(default_factory=list)  # UsageError from fitting
    slots_dropped: Counter = field(default_factory=Counter)  # (name, source) -> times
    positive_removed: int = 0
    spans_left_without_choice: int = 0
    worst_negative: int = 0
    worst_positive: int = 0


def tally(spaces: list, window: int) -> Tally:
    tok = clip_tokenizer(window)
    t = Tally(window, prompts=len(spaces))
    for space in spaces:
        sources = {s.name: s.source for s in space.negative}
        try:
            fitted, report = fit_space(space, tok)
        except UsageError as e:
            t.failed.append(f"{space.prompt!r}: {e}")
            continue
        t.worst_negative = max(t.worst_negative, report.negative_tokens_before)
        t.worst_positive = max(t.worst_positive, report.positive_tokens_before)
        t.fitted += bool(report.dropped)
        for d in report.dropped:
            if d.part == "negative":
                t.slots_dropped[(d.name, sources[d.name])] += 1
            else:
                t.positive_removed += len(d.choices)
        t.spans_left_without_choice += sum(len(s.choices) == 1 for s in fitted.positive)
    return t


def show(t: Tally) -> None:
    print(f"window {t.window} tokens ({t.prompts} prompts)")
    print(f"  worst case before fitting: negative {t.worst_negative}, positive {t.worst_positive} tokens")
    print(f"  prompts needing fitting:   {t.fitted}")
    print(f"  fitting failed:            {len(t.failed)}")
    for line in t.failed:
        print(f"    {line}")
    print(f"  negative slots dropped:    {sum(t.slots_dropped.values())}")
    for (name, source), n in t.slots_dropped.most_common(10):
        print(f"    {n:3d}  {name}  ({source})")
    print(f"  positive choices removed:  {t.positive_removed}")
    print(f"  spans left with no choice: {t.spans_left_without_choice}")


def main(path: str = "prompts/varied.txt") -> None:
    torch.set_num_threads(1)
    prompts = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    spaces = []
    for prompt in prompts:
        try:
            spaces.append(build_task_space(prompt, "improve", with_positive=True, text_encoder=None))
        except UsageError as e:
            print(f"skipped (no space): {prompt!r}: {e}")
    print(f"{len(spaces)} improve spaces (source auto, synonym spans and NPLib slots) from {path}\n")
    for window in WINDOWS:
        show(tally(spaces, window))
        print()


if __name__ == "__main__":
    main(*sys.argv[1:])
