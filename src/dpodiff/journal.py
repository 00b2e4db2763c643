"""The run's journal: every scored prompt pair appended to OUT/evaluations.jsonl as soon as it is scored.

A run killed at any moment (SIGKILL, an OOM kill, a pre-empted job) keeps every pair scored before its
last pipeline call. `--resume` replays the run: the optimisers are seeded, so given the same losses they
propose the same candidates, and the Evaluator answers from the journal every (prompt, negative prompt,
seed) it holds, rendering only the rest. The first line records what decides a loss (the prompt scored
against, model, scorer, generation settings); a resume with other values there is refused. Budget,
algorithm, seeds and validation may change: the journal answers what it holds and the rest is scored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from dpodiff.errors import UsageError
from dpodiff.files import finite, write_text

JOURNAL = "evaluations.jsonl"
VERSION = 1


@dataclass
class Journal:
    path: Path
    settings: dict
    entries: dict[tuple[str, str, int], tuple[float, dict | None]] = field(default_factory=dict)
    earlier: frozenset = frozenset()  # the (prompt, negative prompt, seed) keys an earlier run wrote (--resume)
    started: bool = False  # the settings line is written: with the first scored pair, so a run refused before leaves no file

    @classmethod
    def open(cls, path: str | Path, settings: dict, resume: bool = False) -> "Journal":
        """A new journal at `path` (replacing one there), or with `resume` the one there, checked against `settings`."""
        path = Path(path)
        settings = json.loads(json.dumps(finite(settings)))  # as it reads back from the file
        if not resume:
            return cls(path, settings)
        if not path.is_file():
            raise UsageError(f"--resume: {path.parent} holds no journal ({JOURNAL}) of an earlier run; run without --resume.")
        header, entries, torn = _read(path)
        differ = sorted(k for k in settings.keys() | header.keys() if settings.get(k) != header.get(k))
        if differ:
            were = "; ".join(f"{k}: {header.get(k)!r} then, {settings.get(k)!r} now" for k in differ)
            raise UsageError(f"--resume: the journal in {path.parent} was written with other settings ({were}). "
                             "Resume with the same ones, or choose another --out.")
        if torn:  # appending after a line cut short would damage the next one too
            lines = path.read_text(encoding="utf-8").splitlines()
            write_text(path, "\n".join(lines[:-1]) + "\n")
        return cls(path, settings, entries, frozenset(entries), started=True)

    def lookup(self, prompt: str, negative_prompt: str, seeds: list[int]) -> tuple[list[float], list[dict] | None] | None:
        """The pair's loss and verdict on every seed, when the journal holds all of them."""
        found = [self.entries.get((prompt, negative_prompt, s)) for s in seeds]
        if any(f is None for f in found):
            return None
        verdicts = [v for _, v in found]
        return [loss for loss, _ in found], verdicts if all(v is not None for v in verdicts) else None

    def from_earlier_run(self, prompt: str, negative_prompt: str, seeds: list[int]) -> bool:
        return all((prompt, negative_prompt, s) in self.earlier for s in seeds)

    def record(self, prompt: str, negative_prompt: str, seeds: list[int], losses: list[float], verdicts: list[dict] | None,
               seconds: float) -> None:
        """Append one scored pair and flush: a killed process loses nothing written before."""
        line = {"prompt": prompt, "negative_prompt": negative_prompt, "seeds": seeds, "losses": losses, "verdicts": verdicts,
                "seconds": seconds}
        with self.path.open("a" if self.started else "w", encoding="utf-8") as f:
            if not self.started:
                f.write(json.dumps({"journal": VERSION, "settings": self.settings}, ensure_ascii=False) + "\n")
            f.write(json.dumps(finite(line), ensure_ascii=False) + "\n")
        self.started = True
        for i, seed in enumerate(seeds):
            self.entries[(prompt, negative_prompt, seed)] = (losses[i], verdicts[i] if verdicts else None)


def _read(path: Path) -> tuple[dict, dict, bool]:
    """(settings, entries, whether the last line was cut short by a kill: it is skipped); any other bad line is refused."""
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        header = json.loads(lines[0]) if lines else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("journal") != VERSION or not isinstance(header.get("settings"), dict):
        raise UsageError(f"{path} is not a dpodiff journal (its first line is not the settings record); "
                         "run without --resume (and with --overwrite) to start over.")
    entries, torn = {}, False
    for number, text in enumerate(lines[1:], start=2):
        try:
            line = json.loads(text)
            verdicts = line["verdicts"] or [None] * len(line["seeds"])
            for seed, loss, verdict in zip(line["seeds"], line["losses"], verdicts, strict=True):
                entries[(line["prompt"], line["negative_prompt"], int(seed))] = (math.nan if loss is None else float(loss), verdict)
        except (ValueError, KeyError, TypeError) as e:
            if number == len(lines):  # the write a kill interrupted
                torn = True
                break
            raise UsageError(f"{path}, line {number}, is damaged ({e}); delete that line or start over with --overwrite.") from None
    return header["settings"], entries, torn
