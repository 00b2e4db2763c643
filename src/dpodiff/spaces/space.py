"""The search space: which parts of a prompt may change, and to what.

A space has a *positive* part (spans of the user's prompt, each with its
substitutes, the original first) and a *negative* part (slots of a negative
prompt, each with the empty choice first). A candidate picks one choice index
per slot; index 0 everywhere is the user's own prompt with no negative prompt.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dpodiff.errors import UsageError
from dpodiff.files import write_json

FORMAT_NAME = "dpodiff-space"
FORMAT_VERSION = 1

Candidate = tuple[int, ...]


@dataclass
class Span:
    """A word or expression of the prompt, at characters [start, end), and what may replace it."""

    start: int
    end: int
    choices: list[str]  # choices[0] is the original text
    source: str = ""

    @property
    def original(self) -> str:
        return self.choices[0]


@dataclass
class Slot:
    """One slot of the negative prompt: choices[0] is "" (leave the slot empty)."""

    name: str
    choices: list[str]
    source: str = ""


@dataclass
class SearchSpace:
    prompt: str
    positive: list[Span] = field(default_factory=list)
    negative: list[Slot] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.positive = sorted(self.positive, key=lambda s: s.start)
        for a, b in zip(self.positive, self.positive[1:]):
            if b.start < a.end:
                raise UsageError(f"Search space: the spans {a.original!r} and {b.original!r} overlap in the prompt; keep only one of them.")
        for span in self.positive:
            if not span.start < span.end <= len(self.prompt):
                raise UsageError(f"Search space: span [{span.start}, {span.end}) is not a stretch of the prompt "
                                 f"(start < end <= {len(self.prompt)} needed); fix its offsets.")
            actual = self.prompt[span.start : span.end]
            if actual != span.original:
                raise UsageError(
                    f"Search space: span [{span.start}, {span.end}) of the prompt reads {actual!r}, "
                    f"but its first choice (the original) is {span.original!r}. Fix the offsets or the first choice."
                )
            span.choices = _unique([span.original] + [c for c in span.choices[1:] if c.strip()])
        for slot in self.negative:
            slot.choices = _unique([""] + [c.strip() for c in slot.choices if c.strip()])

    # -- candidates ---------------------------------------------------------
    def sizes(self, positive: bool = True, negative: bool = True) -> list[int]:
        """Number of choices of each slot searched: positive spans first, then negative slots."""
        return ([len(s.choices) for s in self.positive] if positive else []) + (
            [len(s.choices) for s in self.negative] if negative else []
        )

    def split(self, genes: list, positive: bool = True, negative: bool = True) -> tuple[list, list]:
        """(positive genes, negative genes) of the searched parts, in the one gene order every optimiser,
        renderer and relaxed encoder shares: the positive spans first, then the negative slots."""
        n_positive = len(self.positive) if positive else 0
        if len(genes) != n_positive + (len(self.negative) if negative else 0):
            raise ValueError(f"{len(genes)} genes do not fit a space of sizes {self.sizes(positive, negative)}")
        return list(genes[:n_positive]), list(genes[n_positive:])

    def render(self, candidate: Candidate, positive: bool = True, negative: bool = True) -> tuple[str, str]:
        """(positive prompt, negative prompt) of a candidate over the searched parts."""
        pos_genes, neg_genes = self.split(candidate, positive, negative)
        pos_genes = pos_genes if positive else [0] * len(self.positive)
        neg_genes = neg_genes if negative else [0] * len(self.negative)
        text = self.prompt
        for span, g in sorted(zip(self.positive, pos_genes), key=lambda x: -x[0].start):
            text = text[: span.start] + span.choices[g] + text[span.end :]
            if g:
                text = _article(text, span.start)
        # each chosen term ends with its comma, so a slot's tokens do not depend on the other slots
        negative_prompt = " ".join(f"{slot.choices[g]}," for slot, g in zip(self.negative, neg_genes) if slot.choices[g])
        return text, negative_prompt

    def size(self, positive: bool = True, negative: bool = True) -> int:
        """How many distinct candidates there are."""
        n = 1
        for k in self.sizes(positive, negative):
            n *= k
        return n

    # -- JSON ---------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "prompt": self.prompt,
            "keywords": self.keywords,
            "positive": [asdict(s) for s in self.positive],
            "negative": [asdict(s) for s in self.negative],
        }

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict, prompt: str | None = None) -> "SearchSpace":
        """Read our format, or the DPO-Diff reference format {prompt: {synonym, antonym, keywords}}."""
        if not isinstance(data, dict):
            raise UsageError("Search space: the file must hold a JSON object.")
        if data.get("format") == FORMAT_NAME:
            return _from_ours(data, prompt)
        return _from_reference(data, prompt)


def load_space(path: str | Path, prompt: str | None = None) -> SearchSpace:
    """Load a space file in either format; with `prompt`, check that it was built for that prompt."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"Search space file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"Search space file {path} is not valid JSON ({e}). Fix it or build a new one with `dpodiff space`.") from None
    try:
        return SearchSpace.from_dict(data, prompt)
    except UsageError as e:
        raise UsageError(f"{path}: {e}") from None


def find_word(prompt: str, word: str, start: int = 0) -> tuple[int, int] | None:
    """Character span of `word` as a whole word (case-insensitive) in `prompt`, searching from `start`."""
    m = re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)", re.IGNORECASE).search(prompt, start)
    return (m.start(), m.end()) if m else None


def _unique(items: list[str]) -> list[str]:
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _check_prompt(space_prompt: str, prompt: str | None) -> None:
    if prompt is not None and " ".join(space_prompt.split()) != " ".join(prompt.split()):
        raise UsageError(
            f"Search space was built for the prompt {space_prompt!r}, not {prompt!r}. "
            "Use the space file made for this prompt, or build one with `dpodiff space`."
        )


def _string_list(value, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"Search space: {what} must be a list of strings, got {value!r}.")
    return value


def _from_ours(data: dict, prompt: str | None) -> SearchSpace:
    version = data.get("version")
    if version != FORMAT_VERSION:
        raise UsageError(f"Search space: format version {version!r} is not supported (this dpodiff reads version {FORMAT_VERSION}).")
    if not isinstance(data.get("prompt"), str):
        raise UsageError("Search space: missing the string field 'prompt'.")
    _check_prompt(data["prompt"], prompt)
    try:
        positive = [
            Span(_offset(s, "start"), _offset(s, "end"), _string_list(s["choices"], "positive choices"), str(s.get("source", "")))
            for s in data.get("positive", [])
        ]
        negative = [
            Slot(str(s["name"]), _string_list(s["choices"], "negative choices"), str(s.get("source", "")))
            for s in data.get("negative", [])
        ]
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"Search space: a slot is malformed ({e!r}); each positive span needs start, end, choices; each negative slot name, choices.") from None
    for span in positive:
        if not span.choices:
            raise UsageError("Search space: a positive span has no choices; its first choice must be the original word.")
    return SearchSpace(data["prompt"], positive, negative, _string_list(data.get("keywords", []), "keywords"))


def _offset(span: dict, key: str) -> int:
    value = span[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UsageError(f"Search space: a span's {key!r} must be a character offset (an integer >= 0), got {value!r}.")
    return value


def _from_reference(data: dict, prompt: str | None) -> SearchSpace:
    """The DPO-Diff reference format: {prompt: {"synonym": {w: [...]}, "antonym": {w: [...]}, "keywords": [...]}}."""
    entries = {k: v for k, v in data.items() if isinstance(v, dict)}
    if not entries or len(entries) != len(data):
        raise UsageError(
            "Search space: not a dpodiff space (no \"format\": \"dpodiff-space\") and not the DPO-Diff reference "
            "format (an object mapping each prompt to {\"synonym\": {...}, \"antonym\": {...}, \"keywords\": [...]})."
        )
    if prompt is None:
        if len(entries) != 1:
            raise UsageError("Search space: the file holds several prompts; say which one to use.")
        key = next(iter(entries))
    else:
        norm = " ".join(prompt.split()).lower()
        matches = [k for k in entries if " ".join(k.split()).lower() == norm]
        if not matches:
            shown = ", ".join(repr(k) for k in list(entries)[:3])
            raise UsageError(f"Search space: the file has no entry for the prompt {prompt!r} (it has {shown}{'...' if len(entries) > 3 else ''}).")
        key = matches[0]
    entry = entries[key]
    for part in ("synonym", "antonym"):
        if not isinstance(entry.get(part) or {}, dict):
            raise UsageError(f"Search space: {part!r} of {key!r} is {json.dumps(entry[part])[:40]}, not an object mapping each "
                             f"word to its list of {part}s, e.g. {{\"red\": [\"crimson\", \"scarlet\"]}}.")
    text = prompt if prompt is not None else key
    positive, cursor = [], 0
    for word, subs in (entry.get("synonym") or {}).items():
        found = find_word(text, word, cursor) or find_word(text, word)
        if found is None or any(found[0] < s.end and s.start < found[1] for s in positive):
            continue  # the reference spaces list words that are not in the prompt verbatim; skip them
        start, end = found
        cursor = end
        positive.append(Span(start, end, [text[start:end]] + _string_list(subs, f"synonyms of {word!r}"), "reference"))
    negative = [Slot(word, _string_list(subs, f"antonyms of {word!r}"), "reference") for word, subs in (entry.get("antonym") or {}).items()]
    return SearchSpace(text, positive, negative, _string_list(entry.get("keywords", []), "keywords"))


_ARTICLE = re.compile(r"\b([Aa]n?)(\s+)$")


def _article(text: str, at: int) -> str:
    """"a"/"an" before the word substituted at `at` made to agree with it ("a azure disc" -> "an azure disc");
    by its first letter, which is right for the words spaces offer."""
    found = _ARTICLE.search(text[:at])
    if found is None or not text[at:at + 1].isalpha():
        return text
    article = "an" if text[at].lower() in "aeiou" else "a"
    article = article.capitalize() if found.group(1)[0].isupper() else article
    return text[: found.start()] + article + found.group(2) + text[at:]

