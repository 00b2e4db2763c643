"""Build the search space of one prompt from one source (or `auto`, a tuned mix of the offline ones).

Every offline source proposes base forms for a word's lemma and part of speech;
this module ranks them, puts them back into the word's form and capitalisation,
drops the word itself and its other forms, and keeps `per_word` of them.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from dpodiff.errors import UsageError
from dpodiff.spaces import cache as space_cache
from dpodiff.spaces import checks, embedding, restate, senses, thesaurus, vocab, wordnet
from dpodiff.spaces import llm as llm_source
from dpodiff.spaces.nplib import nplib_slots
from dpodiff.spaces.space import SearchSpace, Slot, Span
from dpodiff.spaces.wordings import add_wordings
from dpodiff.spaces.words import Word, content_words, inflect, is_stopword, match_case, same_lemma
from dpodiff.tasks import make_task

from dpodiff.defaults import KINDS, SOURCES  # noqa: F401  (re-exported)
from dpodiff.registry import SPACE_SOURCES
BUILDER_VERSION = 8  # bump when the choices a source gives change, so old cache entries are not reused

_CHOICE = re.compile(r"^[A-Za-z][A-Za-z'\- ]*$")


@dataclass(frozen=True)
class AutoSettings:
    """How `auto` ranks synonyms; the defaults were picked on benchmarks/space_quality.py."""

    wordnet_senses: int = 2  # synonyms from the first (used, drawable) senses only
    sense_share: float = 0.2  # later senses only if tagged at least this share as often as the top one
    moby: bool = True  # add words one WordNet link away that Moby also lists, and reward agreement
    sense_step: float = 0.2  # penalty per later WordNet sense
    agreement_bonus: float = 1.0  # WordNet synonym that Moby lists too
    related_penalty: float = 1.0  # a hypernym/hyponym/similar word rather than a synonym
    commonness_weight: float = 0.15  # times log(CLIP vocabulary rank)
    single_token_bonus: float = 1.0  # prefer words that are one token of the CLIP vocabulary
    moby_fill: int = 3  # then up to this many Moby words linked or close in WordNet
    max_distance: int = 3  # "close": at most this many hypernym steps apart


AUTO = AutoSettings()


@dataclass
class Resources:
    """What the model-dependent sources need; built once per space."""

    tokenizer: object = None
    text_encoder: object = None
    llm: llm_source.LLMConfig | None = None
    neighbours: embedding.Neighbours | None = None

    def nearest(self, word: str, k: int) -> list[str]:
        if self.neighbours is None:
            embedding.require(self.tokenizer, self.text_encoder)
            self.neighbours = embedding.neighbour_function(self.tokenizer, self.text_encoder)
        return self.neighbours(word, k)

    @property
    def has_embeddings(self) -> bool:
        return self.neighbours is not None or (self.tokenizer is not None and self.text_encoder is not None)


def check_choice(kind: str, source: str, per_word: int) -> None:
    if kind not in KINDS:
        raise UsageError(f"Unknown space kind {kind!r}: use one of {', '.join(KINDS)}.")
    SPACE_SOURCES.check(source, "space source")
    entry = SPACE_SOURCES[source]
    if kind == "antonym" and not entry.antonyms:
        others = [e.name for e in SPACE_SOURCES.values() if e.antonyms]
        raise UsageError(f"The {source} source ({entry.help}) lists no opposites: for --kind antonym use --source {', '.join(others)}.")
    if not isinstance(per_word, int) or per_word < 1:
        raise UsageError(f"--per-word must be a positive whole number, got {per_word!r}.")


def prompt_words(prompt: str) -> list[Word]:
    if not prompt or not prompt.strip():
        raise UsageError("The prompt is empty: give the text you would type into the image generator.")
    words = content_words(prompt)
    if not words:
        raise UsageError(
            f"The prompt {prompt!r} has no content words to substitute (only stopwords, numbers or punctuation). "
            "Give a prompt that describes something, e.g. 'a red car in the snow'."
        )
    return words


# -- candidates per source: base forms, best first ----------------------------------------------


def _commonness(word: str) -> float:
    return math.log(vocab.rank(word))


def _fits_pos(candidate: str, pos: str) -> bool:
    return bool(wordnet.base_forms(candidate, pos))


Senses = "list[wordnet.Synset] | None"  # the senses the prompt means (dpodiff.spaces.senses); None: every used sense


# With the prompt's senses, synonyms follow only these WordNet links (similar to, also see, verb group, and
# for verbs troponyms: "soar" for "fly"): no noun hypernyms or hyponyms ("animal", "poodle", "ferry" for
# "dog" and "boat" change what is drawn).
SYNONYM_LINKS = {"n": ("&", "^", "$"), "v": ("&", "^", "$", "~"), "a": ("&", "^", "$"), "r": ("&", "^", "$")}


def wordnet_synonyms(w: Word, meant: Senses = None) -> list[str]:
    return wordnet.synonyms(w.lemma, w.pos, meant or 3)


def thesaurus_tiers(w: Word, max_distance: int = 3, meant: Senses = None) -> tuple[list[str], list[str], list[str]]:
    """Moby's words that WordNet allows in the word's part of speech, in three groups: linked in WordNet
    (synonym or one link away), close in WordNet's hypernym tree (a few steps, so Moby's other senses of
    the word drop out: "whale" -> "club"), the rest; common words first in each. Links and steps start
    from the senses the prompt means when given."""
    found = sorted((c for c in thesaurus.synonyms(w.lemma) if _fits_pos(c, w.pos)), key=_commonness)
    links = SYNONYM_LINKS[w.pos] if meant else wordnet.RELATED_LINKS
    linked = {c.lower() for c in wordnet.synonyms(w.lemma, w.pos, meant or 99) + wordnet.related(w.lemma, w.pos, meant or 99, links)}
    close = set()
    for c in found:
        if c.lower() not in linked:
            d = wordnet.distance(w.lemma, c, w.pos, depth=max_distance, senses=meant)
            if d is not None and d <= max_distance:
                close.add(c)
    return (
        [c for c in found if c.lower() in linked],
        [c for c in found if c in close],
        [c for c in found if c.lower() not in linked and c not in close],
    )


def thesaurus_synonyms(w: Word, meant: Senses = None) -> list[str]:
    tiers = thesaurus_tiers(w, meant=meant)
    return tiers[0] if meant else [c for tier in tiers for c in tier]  # with the prompt's senses, only words linked to them


def auto_synonyms(w: Word, settings: AutoSettings | None = None, meant: Senses = None) -> list[str]:
    """WordNet synonyms of the senses the prompt means (else of the first used senses), then words one
    WordNet link away that Moby confirms; ranked by source agreement, sense order and how common (one
    CLIP token) the word is."""
    settings = settings or AUTO
    wn = wordnet.synonyms(w.lemma, w.pos, meant or settings.wordnet_senses, settings.sense_share)
    moby = {c.lower() for c in thesaurus.synonyms(w.lemma)} if settings.moby else set()
    scored: dict[str, float] = {}
    for i, c in enumerate(wn):
        scored[c] = i * settings.sense_step - (settings.agreement_bonus if c.lower() in moby else 0.0)
    if settings.moby:
        links = SYNONYM_LINKS[w.pos] if meant else wordnet.RELATED_LINKS
        pool = wordnet.synonyms(w.lemma, w.pos, meant or 99) + wordnet.related(w.lemma, w.pos, meant or settings.wordnet_senses, links)
        for c in pool:
            if c not in scored and c.lower() in moby:
                scored[c] = settings.related_penalty
    for c in scored:
        single = vocab.token_id(c) is not None
        scored[c] += settings.commonness_weight * _commonness(c) - (settings.single_token_bonus if single else 0.0)
    ranked = sorted(scored, key=lambda c: scored[c])
    if settings.moby_fill:  # then Moby's own ranking, to fill words WordNet has little for
        linked, close, _ = thesaurus_tiers(w, settings.max_distance, meant)
        ranked += [c for c in (linked if meant else linked + close)[: settings.moby_fill] if c not in scored]
    return ranked


COUSIN_PENALTY = 1.0  # log-rank units: a cousin ("cat" for "dog") must be that much more common than a sibling
BROAD = 50  # a grandparent with more children than this ("animal", "attribute") gives no cousins
SHAPES = 25  # noun.shape
TOPS = 3  # noun.Tops (entity, object, thing, abstraction): a grandparent too broad for cousins
CONCRETE = frozenset({5, 6, 13, 17, 20, 25, 27})  # lexicographer files with cousins: animals, artifacts, food, objects, plants, shapes, substances


def _names(s: wordnet.Synset) -> bool:
    """Whether the synset's first lemma names it: the lemma's main drawable sense is of the same kind (nouns:
    "plane" is first an aircraft, so it does not name the shape; "square" is first a shape, "study" a room),
    or a used one (verbs)."""
    if s.file_pos != "n":
        return wordnet.in_used_sense(s.lemmas[0], s)
    first = wordnet.visual_synsets(s.lemmas[0], "n")
    if not first or first[0].lexfile != s.lexfile:
        return False
    tags = {p: wordnet.occurrences(s.lemmas[0], p) for p in wordnet.POS}
    return tags["n"] >= 0.5 * max(tags.values())  # mostly a noun: not "simple", "well", "stand"


def _kin(lemma: str, pos: str, meant: Senses = None) -> list[str]:
    """Sibling terms of the one sense the prompt means (else the word's first drawable sense), then cousins
    through that sense's first hypernym (dog -> canine -> carnivore -> feline -> cat), penalised; each named by
    its first lemma if that names it, common first. Only that sense ("boat" the gravy boat gives no "bowl", "man"
    the ward no "ward"), except that a shape's senses are all that shape (the square figure and "something
    approximating the shape of a square"). Neither do its ancestors ("shore" restates "beach") nor WordNet's
    top categories ("lake" -> thing gives no "need")."""
    senses = meant or wordnet.visual_synsets(lemma, pos)
    if not senses:
        return []
    main = senses[0]
    own = {s.offset for s in wordnet.synsets(lemma, pos)}
    same_thing = [s for s in wordnet.synsets(lemma, pos) if s.offset != main.offset and s.lexfile == main.lexfile == SHAPES]
    first_parent = parents(main)[:1]
    lineage = first_parent + [g for p in first_parent for g in parents(p)[:1]]
    ancestors = {wordnet.key(l.replace("_", " ")) for s in lineage for l in s.lemmas}
    scores: dict[str, float] = {}

    def add(s: wordnet.Synset, penalty: float, skip: set[int]) -> None:
        name = s.lemmas[0].replace("_", " ")
        if " " in name and any(name.endswith(" " + l.replace("_", " ")) for p in parents(s) for l in wordnet.synset(p.offset, p.pos).lemmas):
            return  # "round shape" under "shape": a kind of the category, not a sibling thing
        if s.offset in own or s.offset in skip or wordnet.key(name) in ancestors | {wordnet.key(lemma)} or not _names(s):
            return
        if penalty and s.lexfile != main.lexfile:  # a cousin is a thing of the same kind ("age" is no shape)
            return
        score = _commonness(name) + penalty - (1.0 if wordnet.sense_count(name, s) > 0 else 0.0)
        scores[name] = min(score, scores.get(name, score))

    for parent in [p for s in [main] + same_thing for p in parents(s)]:
        for sister in children(parent):
            add(sister, 0.0, set())
    # climb from the sense: cousins always (penalised), one level more while it has few kin
    below, level = first_parent, 1
    while below and level <= 2 and main.lexfile in CONCRETE:
        before = len(scores)
        grands = [g for b in below for g in parents(b)][:1]
        for grand in grands:
            aunts = children(grand)
            if len(aunts) > BROAD or grand.lexfile == TOPS:
                continue
            for aunt in aunts:
                add(aunt, level * COUSIN_PENALTY, {b.offset for b in below})
                if all(aunt.offset != b.offset for b in below):
                    for cousin in children(aunt):
                        add(cousin, level * COUSIN_PENALTY, set())
        if len(scores) - before + sum(1 for s in children(below[0]) if s.offset not in own) >= 3:
            break
        below, level = grands, level + 1
    return sorted(scores, key=lambda c: scores[c])


def parents(s: wordnet.Synset) -> list[wordnet.Synset]:
    return [wordnet.synset(p.offset, p.pos) for p in s.pointers if p.symbol in ("@", "@i")]


def children(s: wordnet.Synset) -> list[wordnet.Synset]:
    return [wordnet.synset(p.offset, p.pos) for p in s.pointers if p.symbol in ("~", "~i")]


NOT_HUES = ("pastel", "blond")  # children of "chromatic color" in WordNet, but a tint and a hair colour


def colour_opposites(families: frozenset[str], lemma: str, pos: str, meant: Senses = None) -> list[str]:
    """Other basic colours: those of the word's kind (chromatic or not) first, common first."""
    chromatic = any(name in families and c for name, c in restate.basic_colours())
    others = [(name, c) for name, c in restate.basic_colours() if name not in families and name not in NOT_HUES]
    ranked = sorted(others, key=lambda x: (x[1] != chromatic, _commonness(x[0])))
    return wordnet.antonyms(lemma, pos, meant) + [name for name, _ in ranked]


def wordnet_opposites(w: Word, meant: Senses = None, colours: frozenset[str] | None = None) -> list[str]:
    """Colours get other basic colours (crimson -> blue, green); other words direct antonyms first, then
    (nouns) sibling and cousin terms of the sense the prompt means (adjectives without antonyms that are
    also nouns, like materials, take the noun's), then the antonyms of similar adjectives. What restates the prompt is dropped by the caller."""
    families = colours or restate.main_colour(w.lemma, w.pos)
    if families:
        return colour_opposites(families, w.lemma, w.pos, meant)
    out = wordnet.antonyms(w.lemma, w.pos, meant)
    kin_pos = w.pos
    if w.pos == "a" and not out and wordnet.entry(w.lemma, "n"):
        kin_pos, meant_kin = "n", None
    else:
        meant_kin = meant
    if kin_pos == "n":  # verbs' siblings ("coming", "backing" for "floating") were 21 of 25 wrong on the labelled set
        out += _kin(w.lemma, kin_pos, meant_kin)
    return out + sorted(wordnet.indirect_antonyms(w.lemma, w.pos, meant), key=_commonness)


def vouched_opposites(w: Word, meant: Senses, colours: frozenset[str]) -> frozenset[str]:
    """Opposites WordNet itself gives, which skip the relatedness check: direct antonyms in the sense the
    prompt means ("little" for "big") and those of its head adjective ("small" for "huge"), and other basic
    colours for a colour word."""
    found = wordnet.antonyms(w.lemma, w.pos, meant) + wordnet.indirect_antonyms(w.lemma, w.pos, meant, satellites=False)
    if colours or restate.main_colour(w.lemma, w.pos):
        found += [name for name, _ in restate.basic_colours() if name not in NOT_HUES]
    return frozenset(found)


def embedding_neighbours(w: Word, kind: str, res: Resources, k: int = 60) -> list[str]:
    """Nearest whole-word tokens of the same part of speech; for opposites, minus the word's WordNet synonyms."""
    near = res.nearest(w.lemma, k)
    if w.known:
        near = [c for c in near if _fits_pos(c, w.pos)]
    if kind == "antonym":
        synonyms = {c.lower() for c in wordnet.synonyms(w.lemma, w.pos, 99)}
        near = [c for c in near if c.lower() not in synonyms]
    return near


def candidates(w: Word, kind: str, source: str, res: Resources, meant: Senses = None, colours: frozenset[str] | None = None) -> list[str]:
    """A source's choices for one word, best first. `meant`: the senses the prompt means; `colours`: the
    colour families of a word used as a colour (a rare colour word's plain colour comes first among its
    synonyms: "cobalt" -> "blue", "ebony" -> "black")."""
    plain = _plain(colours)
    if kind == "synonym" and plain and w.lemma not in plain and all(set(plain) & set(s.lemmas) for s in meant or ()):
        return plain  # a shade named by its plain colour's synset ("crimson" in red's): only the plain colour
    return SPACE_SOURCES.load(source)(w, kind, res, meant, colours)


def _plain(colours: frozenset[str] | None) -> list[str]:
    return sorted(colours or (), key=_commonness)


# -- the offline sources (dpodiff.registry.SPACE_SOURCES): a word's choices of one kind, best first --------

def auto_candidates(w: Word, kind: str, res: Resources, meant: Senses, colours: frozenset[str] | None) -> list[str]:
    if kind == "synonym":
        return _plain(colours) + auto_synonyms(w, meant=meant)
    return wordnet_opposites(w, meant, colours) + (embedding_neighbours(w, kind, res) if res.has_embeddings else [])


def wordnet_candidates(w: Word, kind: str, res: Resources, meant: Senses, colours: frozenset[str] | None) -> list[str]:
    if kind == "synonym":
        return _plain(colours) + wordnet_synonyms(w, meant)
    return wordnet_opposites(w, meant, colours)


def thesaurus_candidates(w: Word, kind: str, res: Resources, meant: Senses, colours: frozenset[str] | None) -> list[str]:
    return thesaurus_synonyms(w, meant)  # synonyms only: check_choice refuses opposites from it


def embedding_candidates(w: Word, kind: str, res: Resources, meant: Senses, colours: frozenset[str] | None) -> list[str]:
    return embedding_neighbours(w, kind, res)


def llm_candidates(res: Resources, prompt: str, asked: list[str], kind: str, per_word: int) -> dict[str, list[str]]:
    """The llm source is asked once per prompt, for every word at once."""
    if res.llm is None:
        raise UsageError("The llm source needs an endpoint: give --llm-url and --llm-model (library: llm=LLMConfig(...)).")
    return llm_source.substitutes(res.llm, prompt, asked, kind, per_word)


def finish(w: Word, found: list[str], per_word: int, reinflect: bool = True) -> list[str]:
    """Inflect like the original, copy its capitalisation, drop junk, the word itself and repeats."""
    out: list[str] = []
    seen = {w.text.lower()}
    for c in found:
        c = " ".join(c.split())
        if not _CHOICE.match(c) or len(c) < 2 or len(c.split()) > 3 or is_stopword(c):
            continue
        if same_lemma(c, w.lemma) or same_lemma(c, w.text):
            continue
        if reinflect:  # offline sources: proper names ("Newfoundland" for "dog") change what is drawn
            if c.lower() != c:
                continue
            if w.form != "base":
                c = inflect(c, w.pos, w.form)
        c = match_case(w.text, c)
        if c.lower() in seen:
            continue
        seen.add(c.lower())
        out.append(c)
        if len(out) == per_word:
            break
    return out


# -- spaces ---------------------------------------------------------------------------------------


def _before_noun(prompt: str, w: Word, words: list[Word]) -> bool:
    """Whether the next word is a noun right after this one ("a cobalt circle"; not "coffee next to a laptop")."""
    after = [o for o in words if o.start >= w.end]
    return bool(after) and after[0].pos == "n" and not prompt[w.end:after[0].start].strip()


def choices_per_word(prompt: str, kind: str, source: str, per_word: int, res: Resources) -> list[tuple[Word, list[str]]]:
    """Each content word with its choices: from the senses the prompt means, through every check of
    dpodiff.spaces.checks (and, for opposites, never restating the prompt), before cutting to `per_word`."""
    words, entry = prompt_words(prompt), SPACE_SOURCES[source]
    meant = {(w.start, w.end): senses.word_senses(prompt, w) for w in words}
    colours = {(w.start, w.end): restate.colour_reading(w.lemma, w.pos, _before_noun(prompt, w, words)) for w in words}

    def keep(w: Word, found: list[str]) -> list[str]:
        trusted = colours[w.start, w.end] or frozenset()
        if kind == "antonym":
            found = [c for c in found if not restate.restates(c, words)]
            trusted = vouched_opposites(w, meant[w.start, w.end] or None, trusted)
        return checks.keep(w, kind, list(dict.fromkeys(found)), meant[w.start, w.end], trusted=trusted,
                           colour=bool(colours[w.start, w.end]), offline=entry.offline)

    if entry.per_prompt:  # its words come inflected as the prompt's
        answer = entry.load()(res, prompt, list(dict.fromkeys(w.text for w in words)), kind, per_word)
        return [(w, finish(w, keep(w, answer.get(w.text, [])), per_word, reinflect=False)) for w in words]
    return [(w, finish(w, keep(w, candidates(w, kind, source, res, meant[w.start, w.end] or None, colours[w.start, w.end])), per_word))
            for w in words]


def _assemble(prompt: str, kind: str, source: str, found: list[tuple[Word, list[str]]]) -> SearchSpace:
    keywords = list(dict.fromkeys(w.text for w, _ in found))
    if kind == "synonym":
        spans = [Span(w.start, w.end, [w.text] + subs, source) for w, subs in found if subs]
        return SearchSpace(prompt, positive=spans, keywords=keywords)
    slots, named = [], set()
    for w, subs in found:
        if subs and w.text.lower() not in named:
            named.add(w.text.lower())
            slots.append(Slot(w.text, subs, source))
    return SearchSpace(prompt, negative=slots, keywords=keywords)


def build_space(
    prompt: str,
    kind: str,
    source: str = "auto",
    per_word: int = 5,
    tokenizer=None,
    text_encoder=None,
    llm: llm_source.LLMConfig | None = None,
    cache_dir=None,
    neighbours: embedding.Neighbours | None = None,
) -> SearchSpace:
    """The synonym space (positive spans) or antonym space (negative slots, one per keyword) of a prompt.

    `tokenizer`/`text_encoder` are the target pipeline's (`pipe.tokenizer`, `pipe.text_encoder`), needed by
    the embedding source; `llm` configures the llm source; `neighbours` replaces the embedding table by
    another nearest-word function (benchmarks). Results are cached under `cache_dir`.
    """
    check_choice(kind, source, per_word)
    prompt_words(prompt)
    res = Resources(tokenizer, text_encoder, llm, neighbours)
    if source == "embedding" and neighbours is None:
        embedding.require(tokenizer, text_encoder)
    uses_encoder = source == "embedding" or (source == "auto" and kind == "antonym" and res.has_embeddings)
    key = {
        "builder": BUILDER_VERSION,
        "prompt": prompt,
        "kind": kind,
        "source": source,
        "per_word": per_word,
        "encoder": (embedding.fingerprint(text_encoder) if text_encoder is not None else "custom") if uses_encoder and neighbours is None else None,
        "neighbours": getattr(neighbours, "__name__", "custom") if uses_encoder and neighbours is not None else None,
        "llm": [llm.endpoint, llm.model] if source == "llm" and llm is not None else None,
        "auto": dataclasses.asdict(AUTO) if source == "auto" and kind == "synonym" else None,
    }
    cached = space_cache.read(key, cache_dir)
    if cached is not None:
        return cached
    space = _assemble(prompt, kind, source, choices_per_word(prompt, kind, source, per_word, res))
    space_cache.write(key, space, cache_dir)
    return space


def build_task_space(
    prompt: str,
    task,
    with_positive: bool = False,
    source: str = "auto",
    per_word: int = 5,
    space_kind: str = "both",
    tokenizer=None,
    text_encoder=None,
    llm: llm_source.LLMConfig | None = None,
    cache_dir=None,
    negative_library=None,
    wordings=None,
) -> SearchSpace:
    """The space a task searches: synonym spans where it searches the positive prompt, negative slots where
    it searches the negative prompt: the paper's three spaces, by `space_kind`: "antonym" (the opposites of
    the prompt's words), "library" (the negative-prompt library, NPLib) or "both". `task` is a
    dpodiff.tasks.Task, or a task name with `with_positive` (improve: also synonym spans). `wordings`: the
    model's own words for a word, added to the synonyms (dpodiff.spaces.wordings)."""
    if isinstance(task, str):
        task = make_task(task, with_positive)
    common = dict(source=source, per_word=per_word, tokenizer=tokenizer, text_encoder=text_encoder, llm=llm, cache_dir=cache_dir)
    positive: list[Span] = []
    negative: list[Slot] = []
    keywords: list[str] = []
    if task.search_positive:
        synonyms = build_space(prompt, "synonym", **common)
        synonyms = add_wordings(synonyms, wordings) if wordings is not None else synonyms
        positive, keywords = synonyms.positive, synonyms.keywords
    if task.search_negative:
        antonyms = build_space(prompt, "antonym", **common)
        negative = (antonyms.negative if space_kind != "library" else []) + (nplib_slots(per_word, negative_library) if space_kind != "antonym" else [])
        negative = restate.drop_restating(prompt, negative)  # never name what the prompt asks for
        keywords = keywords or antonyms.keywords
    space = SearchSpace(prompt, positive=positive, negative=negative, keywords=keywords)
    if space.size() <= 1:
        kind = "synonym" if task.search_positive else "antonym"
        raise UsageError(
            f"Found no {task.searched} for any word of {prompt!r} with source {source!r}: every choice the sources "
            "offered meant another sense, restated the prompt or was offensive. Try another --source (llm, or "
            "embedding with the model's text encoder), or write the choices yourself: "
            f"dpodiff space {prompt!r} --kind {kind} --source thesaurus --out space.json, edit its choices, "
            "then pass --space space.json."
        )
    return space
