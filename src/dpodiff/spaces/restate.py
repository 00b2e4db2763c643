"""Whether a negative-prompt choice restates what the prompt asks for.

A negative prompt pushes the image away from what it names, so an improve space must not name what
the user asked for. The rule, in one place (`restates`), over the shipped WordNet index:

A choice restates a content word of the prompt when

1. it is the word or a form of it ("dogs" for "dog", "ran" for "run"); or, when both are colour words
   (a reading under WordNet's noun "color"), only when they are of one colour *family* (2); otherwise when
3. a reading of the choice is a reading of the word (synonyms: "crimson"/"scarlet" as adjectives), an
   ancestor of one (hypernyms, all the way up: "figure", "animal"; an adjective satellite's head counts as
   its hypernym: "large" for "huge", and satellites of one head restate each other: "giant" for "huge"),
   a descendant of one (hyponyms: "poodle" for "dog"), or its only
   sibling (the two kinds of a narrow category: "box" and "square" are the rectangles); direct antonyms
   never restate.

A colour family is the basic colour a colour descends from (the child of "chromatic color" or
"achromatic color": crimson, scarlet, cerise, dark red -> red; navy -> blue); an adjective of colour takes
the families of the colour nouns of its synset ("reddish" -> red); a prompt word whose colour is its
plain reading (`colour_reading`: "cobalt" -> blue, "lemon" -> yellow) takes that one, so "blue" is no
negative for "a cobalt circle". A generic colour word ("color",
"shade", "chromatic color") restates every colour; a colour never restates a generic one ("red" for
"colorful colors" is fine); red and blue are siblings, not a restatement.

Readings: the senses people use (the first, and those tagged in SemCor), in the word's part of speech
when the prompt says it, in any for a choice; a noun choice also in its senses of the same kind
(lexicographer file) as the word's ("box" the drawn rectangle, for "square" the shape). A choice of
several words is judged as a whole when WordNet knows it ("dark red", "box seat"), else by its last
word ("scarlet red" by "red", "bad lighting" by "lighting").
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, replace

from dpodiff.spaces import wordnet
from dpodiff.spaces.space import Slot
from dpodiff.spaces.words import Word, content_words, same_lemma

Reading = tuple[int, str]  # (synset offset, pos of its file: "n", "v", "a", "r")


@dataclass(frozen=True)
class _Term:
    text: str  # lower case, single spaces
    lemma: str
    pos: str | None  # None: any part of speech


def _term(w: Word | str) -> _Term:
    if isinstance(w, Word):
        return _Term(" ".join(w.text.lower().split()), w.lemma, w.pos if w.known else None)
    low = " ".join(str(w).lower().split())
    return _Term(low, low, None)


# -- WordNet structure ----------------------------------------------------------------------------


def _ref(s: wordnet.Synset) -> Reading:
    return (s.offset, s.file_pos)


@functools.lru_cache(maxsize=100_000)
def ancestors(r: Reading) -> frozenset[Reading]:
    """Every hypernym of a synset, all the way up (instance hypernyms too; a satellite's head adjective)."""
    seen: set[Reading] = set()
    frontier = [wordnet.synset(*r)]
    while frontier:
        nxt = []
        for s in frontier:
            for p in s.pointers:
                if p.symbol in ("@", "@i") or (s.pos == "s" and p.symbol == "&"):
                    q = (p.offset, "a" if p.pos == "s" else p.pos)
                    if q not in seen:
                        seen.add(q)
                        nxt.append(wordnet.synset(*q))
        frontier = nxt
    return frozenset(seen)


def _children(r: Reading) -> list[Reading]:
    return [(p.offset, "a" if p.pos == "s" else p.pos) for p in wordnet.synset(*r).pointers if p.symbol in ("~", "~i")]


def _parents(r: Reading) -> list[Reading]:
    return [(p.offset, p.pos) for p in wordnet.synset(*r).pointers if p.symbol in ("@", "@i")]


def _antonyms(r: Reading) -> set[Reading]:
    return {(p.offset, "a" if p.pos == "s" else p.pos) for p in wordnet.synset(*r).pointers if p.symbol == "!"}


def _heads(r: Reading) -> set[Reading]:
    """An adjective's cluster heads: itself if a head, else the heads it is similar to."""
    s = wordnet.synset(*r)
    if s.pos != "s":
        return {r}
    return {(p.offset, "a") for p in s.pointers if p.symbol == "&"}


def _narrow_siblings(a: Reading, b: Reading) -> bool:
    """The only two kinds of one category ("square" and "box" are the rectangles), and not opposites."""
    return any(set(_children(p)) == {a, b} for p in set(_parents(a)) & set(_parents(b))) and b not in _antonyms(a)


# -- colours --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _colour_roots() -> tuple[Reading, frozenset[Reading]]:
    """(the noun "color" as a visual property, {"chromatic color", "achromatic color"})."""
    color = _ref(wordnet.synsets("color", "n")[0])
    heads = frozenset(_ref(wordnet.synsets(name, "n")[0]) for name in ("chromatic_color", "achromatic_color"))
    return color, heads


def colour_family(r: Reading) -> str | None:
    """For a noun under "color": its basic colour ("red" for crimson), "" for a generic colour word
    ("color", "shade"); None for a reading that is no colour."""
    if r[1] != "n":
        return None
    color, heads = _colour_roots()
    up = ancestors(r)
    if r != color and color not in up:
        return None
    for h in heads:
        if h in up:
            family = r if h in _parents(r) else next(a for a in up if h in _parents(a))
            return wordnet.synset(*family).lemmas[0]
    return ""


def _used(word: str, pos: str) -> list[wordnet.Synset]:
    """Used senses of a word form (any of its base forms) in one part of speech."""
    return [s for base in _lemmas(word, pos) for s in wordnet.used_synsets(base, pos)]


def _used_nouns(word: str) -> list[Reading]:
    return [_ref(s) for s in _used(word, "n")]


@functools.lru_cache(maxsize=50_000)
def colour_families(lemma: str, pos: str | None) -> frozenset[str] | None:
    """The colour families a word names (empty string: a generic colour word), None if it is no colour word.
    Nouns by their used readings; adjectives also by the colour nouns of their colour synsets."""
    found: set[str] = set()
    if pos in (None, "n", "a"):
        found |= {f for r in _used_nouns(lemma) if (f := colour_family(r)) is not None}
    if pos in (None, "a"):
        chromatic = {"chromatic", "achromatic"}
        for s in _used(lemma, "a"):
            if s.pos == "s" and any(p.symbol == "&" and wordnet.synset(p.offset, p.pos).lemmas[0] in chromatic for p in s.pointers):
                for name in s.lemmas:
                    found |= {f for r in _used_nouns(name) if (f := colour_family(r))}
    return frozenset(found) if found else None


def same_colour_family(choice: frozenset[str], word: frozenset[str]) -> bool:
    return "" in choice or bool((choice - {""}) & (word - {""}))


# -- readings -------------------------------------------------------------------------------------


def _lemmas(text: str, pos: str) -> list[str]:
    return [b.replace("_", " ") for b in wordnet.base_forms(text, pos)]


@functools.lru_cache(maxsize=50_000)
def _word_readings(lemma: str, pos: str | None) -> frozenset[Reading]:
    out: set[Reading] = set()
    for p in [pos] if pos else wordnet.POS:
        out |= {_ref(s) for s in _used(lemma, p)}
    return frozenset(out)


@functools.lru_cache(maxsize=50_000)
def _choice_readings(choice: str, kinds: frozenset[int]) -> frozenset[Reading]:
    """Used readings in any part of speech, plus noun readings of the same kind as the prompt word's."""
    out = set(_word_readings(choice, None))
    for base in _lemmas(choice, "n"):
        out |= {_ref(s) for s in wordnet.synsets(base, "n") if s.lexfile in kinds}
    return frozenset(out)


def _known(text: str) -> bool:
    return any(wordnet.base_forms(text, p) for p in wordnet.POS)


@functools.lru_cache(maxsize=200_000)
def _restates_term(choice: str, term: _Term) -> bool:
    if same_lemma(choice, term.text) or same_lemma(choice, term.lemma):
        return True
    if " " in choice and not _known(choice):
        return _restates_term(choice.rsplit(" ", 1)[1], term)
    colour_word = colour_families(term.lemma, term.pos) or (colour_reading(term.lemma, term.pos, True) if term.pos else None)
    colour_choice = colour_families(choice, None)
    if colour_word is not None and colour_choice is not None:
        return same_colour_family(colour_choice, colour_word)
    word = _word_readings(term.lemma, term.pos)
    kinds = frozenset(wordnet.synset(*r).lexfile for r in word if r[1] == "n")
    for c in _choice_readings(choice, kinds):
        up = ancestors(c)
        for w in word:
            if c == w or c in ancestors(w) or w in up or _narrow_siblings(c, w):
                return True
            if c[1] == w[1] == "a" and _heads(c) & _heads(w):  # one adjective cluster: "giant" for "huge"
                return True
    return False


def restates(choice: str, prompt_words: Iterable[Word | str]) -> bool:
    """Whether a negative-prompt choice names what one of the prompt's content words asks for (the rule
    in this module's docstring). `prompt_words`: `content_words(prompt)`, or plain words."""
    c = " ".join(choice.lower().split())
    return bool(c) and any(_restates_term(c, _term(w)) for w in prompt_words)


def drop_restating(prompt: str, slots: list[Slot]) -> list[Slot]:
    """The slots without the choices that restate the prompt; slots left with only the empty choice go."""
    words = content_words(prompt)
    out = []
    for slot in slots:
        kept = [c for c in slot.choices if c and not restates(c, words)]
        if kept:
            out.append(replace(slot, choices=([""] if slot.choices[:1] == [""] else []) + kept))
    return out


@functools.lru_cache(maxsize=1)
def basic_colours() -> tuple[tuple[str, bool], ...]:
    """(name, chromatic) of the basic colours: the one-word children of "chromatic color" and
    "achromatic color" (red, blue, ..., black, white, gray), as WordNet names them."""
    out = []
    for head in sorted(_colour_roots()[1], key=lambda r: wordnet.synset(*r).lemmas[0] != "chromatic_color"):
        chromatic = wordnet.synset(*head).lemmas[0] == "chromatic_color"
        for child in _children(head):
            name = wordnet.synset(*child).lemmas[0]
            if "_" not in name:
                out.append((name, chromatic))
    return tuple(out)


def main_colour(lemma: str, pos: str) -> frozenset[str] | None:
    """The colour families of a word that is used as a colour: an adjective with a colour reading, or a
    noun whose first drawable sense is a colour ("red", not "orange" the fruit); None otherwise."""
    if pos == "a":
        families = colour_families(lemma, "a")
    elif pos == "n":
        senses = wordnet.visual_synsets(lemma, "n")
        family = colour_family(_ref(senses[0])) if senses else None
        families = frozenset({family}) if family is not None else None
    else:
        return None
    return families if families and families != {""} else None


def colour_reading(lemma: str, pos: str, modifier: bool) -> frozenset[str] | None:
    """The colour families of a word the prompt uses as a colour: `main_colour`, or for a rare colour word
    in front of a noun (`modifier`) whose main sense is another ("a cobalt circle", "a tangerine triangle",
    "an ivory triangle"), a colour sense of its noun ("tangerine" the colour) or a colour named after it
    ("cobalt blue"), when its first drawable sense is a substance, a plant or food, not an artefact
    ("a brick wall" is made of brick, not brick red)."""
    found = main_colour(lemma, pos)
    if found or not modifier or pos not in ("a", "n"):
        return found
    nouns = wordnet.synsets(lemma, "n")
    first = wordnet.visual_synsets(lemma, "n")[:1]
    if not nouns or (first and first[0].lexfile not in (13, 20, 27)):  # food, plant, substance
        return None
    families = {colour_family(_ref(s)) for s in nouns} - {None, ""}
    families |= {name for name, _ in basic_colours() if wordnet.entry(f"{lemma}_{name}", "n")}
    return frozenset(families) or None
