"""The checks every choice passes, whatever its source (WordNet, Moby, embedding neighbours, an LLM).

A choice is dropped when
- it is not a word: some part of it is no WordNet lemma in any part of speech ("asants", "ounding");
- it is rare (never tagged in SemCor and no whole-word token of the CLIP vocabulary: "podetium") and
  not a WordNet synonym in the sense the prompt means ("fireplug" stays): on the labelled set rare
  words were no more often wrong than common ones, so only those without WordNet's word for it go;
- it is offensive: a word of the shipped list (assets/offensive.txt) or one that WordNet's glosses mark
  as a slur or an offensive, obscene, vulgar, derogatory or insulting term;
- it comes from a sense the prompt does not mean: it shares a WordNet sense with the word, but only
  senses other than those the prompt means ("chickenhearted" for "yellow" the colour);
- (synonyms) the sentence with it moves away from the prompt: the cosine similarity, under the
  sentence model, of the prompt with that one swap to the prompt is below SYNONYM_FLOOR;
- (opposites) it is a synonym of the word in a sense the prompt means ("sporting" for "wearing").

The floor and the rarity rule were measured on benchmarks/data/sense_labels.jsonl
(`benchmarks/space_quality.py --senses`).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from dpodiff.spaces import vocab, wordnet
from dpodiff.spaces.words import Word

SYNONYM_FLOOR = 0.7  # measured: no floor separates right from wrong senses on the labelled set (0.7-0.95: 83-66% wrong), higher ones only lose right choices
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


def keep(prompt: str, w: Word, kind: str, found: list[str], meant: list[wordnet.Synset], floor: float = SYNONYM_FLOOR,
         trusted: list[str] = ()) -> list[str]:
    """The choices of `found` that pass every check, in their order; `trusted` ones skip the sentence check
    (a rare colour word's plain colour: the sentence model hears "cobalt" and "blue" as far apart)."""
    out = [c for c in found if is_word(c) and not offensive(c) and not other_sense(c, w, meant)
           and not (rare(c) and not synonym_in_meant_sense(c, meant))]
    if kind == "antonym":
        return [c for c in out if not synonym_in_meant_sense(c, meant)]
    if not out or floor <= -1:
        return out
    from dpodiff.spaces.senses import embed

    vectors = embed([prompt] + [prompt[: w.start] + c + prompt[w.end:] for c in out])
    similarity = (vectors[1:] @ vectors[0]).tolist()
    return [c for c, sim in zip(out, similarity) if sim >= floor or c in trusted]
