"""The checks every choice passes, whatever its source (WordNet, Moby, embedding neighbours, an LLM).

Every choice is dropped when it is offensive (a word of assets/offensive.txt, or one WordNet's glosses
mark as a slur or an offensive, obscene, vulgar, derogatory or insulting term); unless `trusted` (a
rare colour word's plain colour, WordNet's own antonyms, other basic colours), also when
- it is not a word: some part of it is no WordNet lemma in any part of speech ("asants", "ounding");
- it comes from a sense the prompt does not mean: it shares a WordNet sense with the word, but only
  senses other than those the prompt means ("chickenhearted" for "yellow" the colour).

A synonym is also dropped when
- it is rare (never tagged in SemCor and no whole-word token of the CLIP vocabulary: "trigon",
  "xanthous", "podetium"), unless it is another spelling or a suffixed form of the word ("mediaeval",
  "blueish"), which also skips the mostly-another-sense check below ("disc" for "disk");
- (a verb from an offline source) it is more than one word: a phrasal verb or an idiom ("getting over" for
  "crossing", "expressing joy" for "laughing") mostly reads as another sense or register;
- it is a kind of what the word means, or what the word is a kind of ("puppy", "animal" for "dog"), or
  for a colour a compound of it ("light-green": another shade);
- read alone it mostly means something else: SemCor tagged it more often in another sense ("ground"
  for "background", "pool" for "pond", "morning" for "dawn");
- (offline sources) it is not a synonym in the sense the prompt means and its relatedness to the word
  (cosine of the two words alone under the sentence model) is below SYNONYM_FLOOR.

An opposite is also dropped when it is rare, a compound of the word ("fishing boat"), a synonym in a
sense the prompt means ("sporting" for "wearing"), or (offline sources) its relatedness to the word is
below OPPOSITE_FLOOR: a sensible opposite is a thing of the same kind ("mule" for "horse": 0.50), the
junk WordNet's kin relations bring is not ("flare" for "circle": 0.27, "quagga" for "horse": 0.22).

Measured on benchmarks/data/sense_labels.jsonl (`benchmarks/space_quality.py --senses`): the default
space's wrong share went from 45.2% to 19.9%, about the same on either half of the labelled prompts. The
floors trade precision for choices: opposites at 0.55 are 9% wrong but leave "square" none, at 0.45 19%.
Relatedness separates opposites well (AUC 0.81 without colours) and synonyms badly (0.63: "azure" and
"blue" are 0.28), so synonyms in the meant sense skip it. A floor on the similarity of the whole prompt
with one swap to the prompt separates neither (AUC 0.48 for opposites) and was left out.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Collection
from pathlib import Path

from dpodiff.spaces import vocab, wordnet
from dpodiff.spaces.restate import ancestors
from dpodiff.spaces.words import Word, same_lemma

SYNONYM_FLOOR = 0.7  # least relatedness of a synonym not in the sense the prompt means ("tiny" for "small": 0.91)
OPPOSITE_FLOOR = 0.45  # least relatedness of an opposite ("triangle" for "square": 0.48)
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


def narrower(choice: str, w: Word) -> bool:
    """A compound of the word itself: a kind of it ("light-green", "fishing boat"), not another word for it."""
    parts = choice.lower().replace("-", " ").split()
    return len(parts) > 1 and any(same_lemma(p, w.lemma) for p in parts)


def kind_of(choice: str, w: Word, meant: list[wordnet.Synset]) -> bool:
    """(nouns and verbs) Whether the choice, in a sense people use, is a kind of what the prompt means or
    what it is a kind of ("puppy" or "animal" for "dog"), and not also a synonym: another picture."""
    if w.pos not in ("n", "v") or not meant:
        return False
    ids = {(s.offset, w.pos) for s in meant}
    up = set().union(*(ancestors(r) for r in ids))
    readings = [(s.offset, w.pos) for b in wordnet.base_forms(choice, w.pos) for s in wordnet.used_synsets(b, w.pos)]
    return not ids & set(readings) and any(r in up or ids & ancestors(r) for r in readings)


def variant(choice: str, w: Word) -> bool:
    """Another spelling of the word (WordNet gives one all the other's senses: "disc", "colour",
    "mediaeval") or the word with a suffix ("blueish", "reddish", "smallish"): rare or not, it is plain."""
    stem = w.lemma.lower().removesuffix("e")
    if choice.lower().startswith(stem) and len(choice) > len(w.lemma):
        return True
    if difflib.SequenceMatcher(None, choice.lower(), w.lemma.lower()).ratio() < 0.7:
        return False
    mine = {s.offset for s in wordnet.synsets(w.lemma, w.pos)}
    theirs = {s.offset for b in wordnet.base_forms(choice, w.pos) for s in wordnet.synsets(b, w.pos)}
    return bool(theirs) and (theirs <= mine or mine <= theirs)


def dominated(choice: str, w: Word, meant: list[wordnet.Synset]) -> bool:
    """Whether the choice, read alone, mostly means something else: SemCor tagged it more often in a sense
    other than the one the prompt means ("ground" the land for "background", "pool" the swimming pool)."""
    if not meant:
        return False
    ids = {s.offset for s in meant}
    for lemma in wordnet.base_forms(choice, w.pos):
        found = wordnet.synsets(lemma, w.pos)
        if any(s.offset in ids for s in found):
            mine = max(wordnet.sense_count(lemma, s) for s in found if s.offset in ids)
            return any(wordnet.sense_count(lemma, s) > mine for s in found if s.offset not in ids)
    return False


@functools.lru_cache(maxsize=50_000)
def _vector(text: str):
    from dpodiff.spaces.senses import embed

    return embed([text])[0]


def relatedness(choice: str, w: Word) -> float:
    """Cosine similarity of the choice and the word, each alone, under the offline sentence model."""
    return float(_vector(choice.lower()) @ _vector(w.lemma.lower()))


def keep(w: Word, kind: str, found: list[str], meant: list[wordnet.Synset], trusted: Collection[str] = (),
         colour: bool = False, offline: bool = True) -> list[str]:
    """The choices of `found` that pass every check, in their order. `trusted` choices (a rare colour word's
    plain colour, WordNet's own antonyms, other basic colours) pass all but the offensive-term check;
    `colour`: the word is a colour, so its compounds are other shades ("light-green") and are dropped, but
    the kind-of check is skipped (WordNet files crimson under red as nouns; as adjectives they are
    synonyms); `offline`: the choices
    come from an offline source, so those WordNet does not vouch for must also be related to the word
    (an LLM's are not held to the floor)."""

    def passes(c: str) -> bool:
        if offensive(c):
            return False
        if c in trusted:
            return True
        if not is_word(c) or other_sense(c, w, meant):
            return False
        if kind == "antonym":
            return (not narrower(c, w) and not rare(c) and not synonym_in_meant_sense(c, meant)
                    and (not offline or relatedness(c, w) >= OPPOSITE_FLOOR))
        if (narrower(c, w) if colour else kind_of(c, w, meant)) or ((dominated(c, w, meant) or rare(c)) and not variant(c, w)):
            return False
        if w.pos == "v" and offline and len(c.split()) > 1:
            return False  # phrasal verbs and idioms ("getting over", "expressing joy", "flying the coop")
        return synonym_in_meant_sense(c, meant) or not offline or relatedness(c, w) >= SYNONYM_FLOOR

    return [c for c in found if passes(c)]
