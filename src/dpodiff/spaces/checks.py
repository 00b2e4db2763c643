"""The checks every choice passes, whatever its source (WordNet, Moby, embedding neighbours, an LLM).

A choice is dropped when
- it is not a word: some part of it is no WordNet lemma in any part of speech ("asants", "ounding");
- it is rare (never tagged in SemCor and no whole-word token of the CLIP vocabulary: "podetium") and
  not a WordNet synonym in the sense the prompt means ("fireplug" stays): on the labelled set rare
  words were no more often wrong than common ones, so only those WordNet does not vouch for go;
- it is offensive: a word of the shipped list (assets/offensive.txt) or one that WordNet's glosses mark
  as a slur or an offensive, obscene, vulgar, derogatory or insulting term;
- it comes from a sense the prompt does not mean: it shares a WordNet sense with the word, but only
  senses other than those the prompt means ("chickenhearted" for "yellow" the colour);
- (opposites) it is a synonym of the word in a sense the prompt means ("sporting" for "wearing").

Measured on benchmarks/data/sense_labels.jsonl (`benchmarks/space_quality.py --senses`). A floor on the
sentence model's similarity of the prompt with one swap to the prompt was tried and left out: the
labelled synonyms are 83% wrong; kept above 0.7 to 0.9 they are still 83-78% wrong, above 0.95 66% but
with 45 of the 160 right ones left; and 0.7 already dropped "crimson" for "red", "fireplug" for "fire hydrant".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from pathlib import Path

from dpodiff.spaces import vocab, wordnet
from dpodiff.spaces.words import Word

OFFENSIVE_PATH = Path(__file__).resolve().parent.parent / "assets" / "offensive.txt"
_MARKED = re.compile(r"ethnic slur|\b(offensive|derogatory|disparaging|vulgar|obscene|insulting)( slang)? (terms?|names?|words?|expressions?)\b")


@functools.lru_cache(maxsize=1)
def _listed() -> frozenset[str]:
    lines = OFFENSIVE_PATH.read_text(encoding="utf-8").splitlines()
    return frozenset(l.strip().lower() for l in lines if l.strip() and not l.startswith("#"))


def _lemmas(part: str) -> list[tuple[str, str]]:
    """(lemma, pos) readings of one word form, in every part of speech."""
    return [(b, p) for p in wordnet.POS for b in wordnet.base_forms(part, p)]


def is_word(choice: str) -> bool:
    return all(_lemmas(part) for part in choice.split()) or bool(_lemmas(choice))


def rare(choice: str) -> bool:
    if any(wordnet.tagged_count(lemma, pos) > 0 for lemma, pos in _lemmas(choice)):
        return False
    return not all(vocab.token_id(part) is not None for part in choice.split())


@functools.lru_cache(maxsize=20_000)
def offensive(choice: str) -> bool:
    text = " ".join(choice.lower().split())
    if text in _listed() or any(part in _listed() for part in text.split()):
        return True
    return any(_MARKED.search(wordnet.gloss(s)) for lemma, pos in _lemmas(text) for s in wordnet.synsets(lemma, pos))


def _shares(choice: str, synsets: list[wordnet.Synset]) -> bool:
    names = {wordnet.key(choice)} | {wordnet.key(b) for b, _ in _lemmas(choice)}
    return any(l.lower() in names for s in synsets for l in s.lemmas)


def other_sense(choice: str, w: Word, meant: list[wordnet.Synset]) -> bool:
    """Whether the choice is a synonym of the word only in senses the prompt does not mean."""
    if not meant:
        return False
    others = [s for s in wordnet.synsets(w.lemma, w.pos) if s.offset not in {m.offset for m in meant}]
    return _shares(choice, others) and not _shares(choice, meant)


def synonym_in_meant_sense(choice: str, meant: list[wordnet.Synset]) -> bool:
    return bool(meant) and _shares(choice, meant)


def keep(w: Word, kind: str, found: list[str], meant: list[wordnet.Synset], trusted: Collection[str] = ()) -> list[str]:
    """The choices of `found` that pass every check, in their order. A synonym WordNet gives for the sense
    the prompt means, or a `trusted` one (a rare colour word's plain colours), skips the rarity check."""
    out = [c for c in found if is_word(c) and not offensive(c) and not other_sense(c, w, meant)]
    if kind == "antonym":
        return [c for c in out if not rare(c) and not synonym_in_meant_sense(c, meant)]
    return [c for c in out if c in trusted or synonym_in_meant_sense(c, meant) or not rare(c)]
