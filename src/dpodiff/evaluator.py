"""The Evaluator: prompt pairs x seeds -> images -> losses (and the judge's verdicts) -> scored prompts.

One path for everything that renders and scores: the search's candidates, the validation of its shortlist
(selection.py), bench's evaluation seeds and `dpodiff generate`. Images are made one pipeline call
(`generation.batch_size` images) at a time, and each prompt pair is handed back as soon as all its seeds
are scored, so an interrupt loses at most one pipeline call's work. With a journal (journal.py) each pair
is also appended to disk as it is scored, and a pair the journal already holds is answered from it,
without images (`rendered` makes them when they are shown).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import torch
from PIL import Image

from dpodiff.backends import Backend, GenerationSettings, Request
from dpodiff.journal import Journal
from dpodiff.objectives.judge import Judge, judge_images
from dpodiff.objectives.scorer import Scorer
from dpodiff.report.images import to_pil


@dataclass
class Scored:
    """One prompt pair's images on some seeds, their losses against the original prompt, and the judge's verdicts."""

    prompt: str
    negative_prompt: str
    seeds: list[int]
    losses: list[float]
    seconds: float  # to make and score these images
    pixels: torch.Tensor | None = field(repr=False)  # [len(seeds), 3, H, W] in [0, 1]; None: answered from the journal
    verdicts: list[dict] | None = None  # None: no judge, or the judge cannot read the original prompt

    @property
    def loss(self) -> float:
        return sum(self.losses) / len(self.losses)

    @property
    def passed(self) -> list[bool] | None:
        return [bool(v["pass"]) for v in self.verdicts] if self.verdicts else None

    @cached_property
    def images(self) -> list[Image.Image]:
        return to_pil(self.pixels)


@dataclass
class Evaluator:
    """Scores every image against `original` (the user's prompt), whatever prompt pair made it."""

    backend: Backend
    scorer: Scorer
    generation: GenerationSettings
    original: str
    judge: Judge | None = None
    journal: Journal | None = None

    @cached_property
    def target(self):
        with torch.inference_mode():
            return self.scorer.target(self.original)

    def evaluate(self, pairs: list[tuple[str, str]], seeds: list[int]) -> Iterator[Scored]:
        """Each (prompt, negative prompt) pair scored on every seed, in order, as soon as its images are made
        (or answered from the journal, when it holds the pair on every seed)."""
        todo: list[tuple[str, str]] = []
        for pair in pairs:
            known = self.journal.lookup(*pair, seeds) if self.journal is not None else None
            if known is None:
                todo.append(pair)
                continue
            yield from self._render(todo, seeds)
            todo = []
            yield Scored(*pair, list(seeds), known[0], 0.0, None, known[1])
        yield from self._render(todo, seeds)

    def rendered(self, scored: Scored) -> Scored:
        """`scored` with its images: a pair answered from the journal is drawn again (its losses stay the journal's)."""
        if scored.pixels is not None:
            return scored
        with torch.inference_mode():
            pixels = self.backend.generate([Request(scored.prompt, scored.negative_prompt, s) for s in scored.seeds], self.generation)
        return Scored(scored.prompt, scored.negative_prompt, scored.seeds, scored.losses, scored.seconds, pixels, scored.verdicts)

    def _render(self, pairs: list[tuple[str, str]], seeds: list[int]) -> Iterator[Scored]:
        if not pairs:
            return
        n = len(seeds)
        requests = [Request(text, negative, s) for text, negative in pairs for s in seeds]
        step = self.generation.batch_size or len(requests)
        done, pending = 0, None  # pairs handed back; images made whose pair still waits for some of its seeds
        t0 = time.perf_counter()
        for start in range(0, len(requests), step):
            with torch.inference_mode():  # not across a yield: the caller's code must not run in inference mode
                made = self.backend.generate(requests[start : start + step], self.generation)
                pending = made if pending is None else torch.cat([pending, made])
            ready = min(start + step, len(requests)) // n - done  # pairs whose images are all made
            if ready == 0:
                continue
            images, pending = pending[: ready * n], pending[ready * n :]
            with torch.inference_mode():
                losses = self.scorer.loss(images, self.target).tolist()  # one host sync per pipeline call
            seconds = (time.perf_counter() - t0) / ready
            for i in range(ready):
                text, negative = pairs[done]
                scored = Scored(text, negative, list(seeds), losses[i * n : (i + 1) * n], seconds, images[i * n : (i + 1) * n])
                if self.judge is not None:
                    scored.verdicts = judge_images(self.judge, self.original, scored.images)
                if self.journal is not None:
                    self.journal.record(text, negative, scored.seeds, scored.losses, scored.verdicts, seconds)
                done += 1
                yield scored
            t0 = time.perf_counter()

    def score(self, pairs: list[tuple[str, str]], seeds: list[int]) -> list[Scored]:
        return list(self.evaluate(pairs, seeds))


def joined(parts: list[Scored]) -> Scored:
    """One prompt pair's images scored in several rounds (adaptive validation), as one Scored in seed order."""
    first = parts[0]
    verdicts = [v for p in parts for v in p.verdicts] if all(p.verdicts for p in parts) else None
    pixels = torch.cat([p.pixels for p in parts]) if all(p.pixels is not None for p in parts) else None
    return Scored(first.prompt, first.negative_prompt, [s for p in parts for s in p.seeds], [x for p in parts for x in p.losses],
                  sum(p.seconds for p in parts), pixels, verdicts)


def fresh_seeds(used, n: int, start: int | None = None) -> list[int]:
    """`n` seeds that are not in `used`: counting up from `start`, by default from just above the largest used."""
    used = set(used)
    seed = max(used, default=-1) + 1 if start is None else start
    out = []
    while len(out) < n:
        if seed not in used:
            out.append(seed)
        seed += 1
    return out
