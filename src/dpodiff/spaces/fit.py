"""The token window is a budget: fit a search space so that every candidate fits the text encoder.

A text encoder reads at most `window` tokens, start and end tokens included (77 for Stable
Diffusion and for the shapes world, 20 for small test models). Anything past the window is cut off, silently for a
black-box prompt and with an error for a relaxed (GPO) prompt, so a space is fitted before a
search: afterwards EVERY candidate's positive prompt and negative prompt (tokenized separately)
fit the window.

The worst case of a part is what a relaxed prompt needs (`backends.relaxed._layout`):
2 + the tokens of the fixed text + for each slot the tokens of its longest choice. Negative
choices are counted as "choice," (as they are rendered); the positive prompt as the text
between spans, piece by piece, plus each span's longest choice.

Dropping order, applied to each searched part until it fits:
  - negative part: whole slots are dropped; generic library slots (source "nplib" or a name
    starting "nplib:") before the prompt's own slots (antonyms, ...); within each group the
    widest slot (most tokens in its longest choice) first, ties: the later slot first. It
    stops as soon as the part fits.
  - positive part: spans are never dropped (the prompt must stay). Their choices longer than
    the original are removed instead, longest first (ties: later span, then later choice,
    first), until it fits; a span left with its original only stays but offers no choice.
A part that is not searched counts as the prompt alone or an empty negative prompt, and is
never changed. A prompt that does not fit the window by itself, or fitting that leaves nothing
to search, is a UsageError.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from dpodiff.errors import UsageError
from dpodiff.spaces.space import SearchSpace, Slot, Span

PARTS = ("positive", "negative")


@dataclass
class Dropped:
    """What fitting removed from one slot or span, and why."""

    part: str  # "negative" or "positive"
    name: str  # slot name, or the span's original word
    choices: list[str]  # a whole negative slot's choices, or the positive choices removed
    reason: str  # one short sentence


@dataclass
class FitReport:
    """Worst-case token counts of both parts before and after fitting, and what was removed."""

    window: int
    negative_tokens_before: int
    negative_tokens_after: int
    positive_tokens_before: int
    positive_tokens_after: int
    dropped: list[Dropped] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class _Counter:
    """Token counts without start/end tokens, cached per string (fitting re-counts the same choices)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.cache: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        if text not in self.cache:
            # like relaxed._ids: blank text is no tokens
            self.cache[text] = len(self.tokenizer(text, add_special_tokens=False).input_ids) if text.strip() else 0
        return self.cache[text]


def _slot_width(slot: Slot, count: _Counter) -> int:
    return max((count(f"{c},") for c in slot.choices if c), default=0)


def _span_width(span: Span, count: _Counter) -> int:
    return max(count(c) for c in span.choices)


def _fixed_tokens(space: SearchSpace, count: _Counter) -> int:
    """Tokens of the prompt text between spans, counted piece by piece like relaxed.positive_layout."""
    pieces, cursor = [], 0
    for span in space.positive:
        pieces.append(space.prompt[cursor : span.start])
        cursor = span.end
    pieces.append(space.prompt[cursor:])
    return sum(count(p) for p in pieces)


def _negative_worst(slots: list[Slot], count: _Counter) -> int:
    return 2 + sum(_slot_width(s, count) for s in slots)


def _positive_worst(space: SearchSpace, spans: list[Span], count: _Counter) -> int:
    return 2 + _fixed_tokens(space, count) + sum(_span_width(s, count) for s in spans)


def worst_case_tokens(space: SearchSpace, tokenizer, part: str) -> int:
    """Tokens (start and end included) the longest candidate of `part` needs, as a relaxed prompt lays it out."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    count = _Counter(tokenizer)
    if part == "negative":
        return _negative_worst(space.negative, count)
    return _positive_worst(space, space.positive, count)


def _is_library(slot: Slot) -> bool:
    return slot.source == "nplib" or slot.name.startswith("nplib:")


def _fit_negative(slots: list[Slot], count: _Counter, window: int) -> tuple[list[Slot], list[Dropped]]:
    needed = _negative_worst(slots, count)
    order = sorted(range(len(slots)), key=lambda i: (not _is_library(slots[i]), -_slot_width(slots[i], count), -i))
    kept, dropped = list(range(len(slots))), []
    for i in order:
        if _negative_worst([slots[k] for k in kept], count) <= window:
            break
        kept.remove(i)
        slot = slots[i]
        kind = "library slot" if _is_library(slot) else f"the prompt's own slot ({slot.source or 'no source'})"
        dropped.append(Dropped("negative", slot.name, slot.choices[1:], f"{kind}; negative prompt needed {needed} tokens, window {window}"))
    return [slots[k] for k in kept], dropped


def _fit_positive(space: SearchSpace, count: _Counter, window: int) -> tuple[list[Span], list[Dropped]]:
    spans = [Span(s.start, s.end, list(s.choices), s.source) for s in space.positive]
    needed = _positive_worst(space, spans, count)
    # only choices longer than their original can make the prompt overflow
    removable = [(i, c) for i, s in enumerate(spans) for c in s.choices[1:] if count(c) > count(s.original)]
    removable.sort(key=lambda ic: (-count(ic[1]), -ic[0], -spans[ic[0]].choices.index(ic[1])))
    removed: dict[int, list[str]] = {}
    for i, c in removable:
        if _positive_worst(space, spans, count) <= window:
            break
        spans[i].choices.remove(c)
        removed.setdefault(i, []).append(c)
    dropped = []
    for i in sorted(removed):
        left = "; only the original is left" if len(spans[i].choices) == 1 else ""
        reason = f"longest choices removed; positive prompt needed {needed} tokens, window {window}{left}"
        dropped.append(Dropped("positive", spans[i].original, removed[i], reason))
    return spans, dropped


def _searchable(space: SearchSpace, positive: bool, negative: bool) -> bool:
    return any(n >= 2 for n in space.sizes(positive, negative))


def fit_space(
    space: SearchSpace, tokenizer, window: int | None = None, *, positive: bool = True, negative: bool = True
) -> tuple[SearchSpace, FitReport]:
    """A new space whose every candidate fits `window` tokens in both parts (see the module docstring)."""
    window = int(tokenizer.model_max_length) if window is None else int(window)
    count = _Counter(tokenizer)
    originals = SearchSpace(space.prompt, [Span(s.start, s.end, [s.original], s.source) for s in space.positive])
    prompt_tokens = max(2 + count(space.prompt), _positive_worst(originals, originals.positive, count))
    if prompt_tokens > window:
        raise UsageError(
            f"The prompt {space.prompt!r} needs {prompt_tokens} tokens (start and end included), more than the text "
            f"encoder's window of {window}: nothing past the window would be read. Shorten the prompt."
        )

    pos_before = _positive_worst(space, space.positive, count) if positive else prompt_tokens
    neg_before = _negative_worst(space.negative, count) if negative else 2
    spans = [Span(s.start, s.end, list(s.choices), s.source) for s in space.positive]
    slots = [Slot(s.name, list(s.choices), s.source) for s in space.negative]
    neg_dropped: list[Dropped] = []
    pos_dropped: list[Dropped] = []
    if negative:
        slots, neg_dropped = _fit_negative(slots, count, window)
    if positive:
        spans, pos_dropped = _fit_positive(space, count, window)
    dropped = neg_dropped + pos_dropped
    fitted = SearchSpace(space.prompt, spans, slots, list(space.keywords))
    report = FitReport(
        window,
        neg_before,
        _negative_worst(fitted.negative, count) if negative else 2,
        pos_before,
        _positive_worst(fitted, fitted.positive, count) if positive else prompt_tokens,
        dropped,
    )
    if _searchable(space, positive, negative) and not _searchable(fitted, positive, negative):
        lost = "; ".join(f"{d.part} {d.name!r}: {', '.join(d.choices)}" for d in dropped)
        raise UsageError(
            f"A token window of {window} leaves nothing to search for {space.prompt!r}: every choice had to go "
            f"for the candidates to fit ({lost}). Use a text encoder with a longer window, or shorter choices."
        )
    return fitted, report
