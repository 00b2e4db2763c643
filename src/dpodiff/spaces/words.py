"""Split a prompt into words, find the ones worth substituting, and keep their form.

Everything here is a light heuristic over WordNet's own data (no tagger model is
available offline): a word's possible parts of speech come from WordNet's index
and morphology, and a few context rules pick one. Substitutes are looked up by
lemma and re-inflected to the original's form (plural, third person, -ing, past)
and capitalisation.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from dpodiff.spaces import wordnet

STOPWORDS = frozenset(
    """a an the this that these those my your his her its our their some any each every no not nor
    and or but if then than so as of at by for with without within from to into onto in on off over under
    above below between among through across along around about against behind beside besides beyond near
    up down out up upon via per while during before after since until till
    is are was were be been being am do does did done have has had having will would shall should can could
    may might must i me you he him she it we us they them who whom whose which what where when why how
    there here all both either neither such very too also just only own same other another more most much
    many few several one two three four five six seven eight nine ten lots lot next none nothing something
    s t don isn aren wasn weren""".split()
)
DETERMINERS = frozenset(
    "a an the this that these those my your his her its our their some any each every no many several few "
    "one two three four five six seven eight nine ten of".split()
)
PREPOSITIONS = frozenset(
    """at by for with without within from into onto in on off over under above below between among through across
    along around about against behind beside besides beyond near upon via per during before after since until till""".split()
)
VERB_CUES = frozenset("to will would shall should can could may might must does do did he she it they who which i we you".split())
COPULAS = frozenset("is are was were be been being am looks look seems seem very so too more most".split())

_TOKEN = re.compile(r"[A-Za-z]+(?:['’-][A-Za-z]+)*|\d+(?:[.,]\d+)*|[^\sA-Za-z\d]")


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int

    @property
    def is_word(self) -> bool:
        return self.text[0].isalpha()


@dataclass(frozen=True)
class Word:
    """A content word or multi-word expression of the prompt, with what the sources need to know."""

    text: str  # as written in the prompt
    start: int
    end: int
    pos: str  # "n", "v", "a" or "r"
    lemma: str  # WordNet base form (lower case, spaces between words), or the lower-cased text
    form: str  # "base", "plural", "3sg", "ing", "past", "comparative", "superlative"
    known: bool  # whether WordNet knows the lemma in that part of speech


def tokens(prompt: str) -> list[Token]:
    return [Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(prompt)]


def is_stopword(text: str) -> bool:
    return text.lower() in STOPWORDS


def content_words(prompt: str) -> list[Word]:
    """The words (and multi-word expressions such as "fire hydrant") a space may substitute, in order."""
    toks = tokens(prompt)
    groups = _group_expressions(prompt, toks)
    words: list[Word] = []
    previous_pos: str | None = None
    for i, (start, end) in enumerate(groups):
        text = prompt[start:end]
        if not text[0].isalpha() or is_stopword(text) or len(text) < 2:
            previous_pos = None
            continue
        prev = prompt[groups[i - 1][0] : groups[i - 1][1]].lower() if i > 0 else ""
        before_prev = prompt[groups[i - 2][0] : groups[i - 2][1]].lower() if i > 1 else ""
        nxt = prompt[groups[i + 1][0] : groups[i + 1][1]] if i + 1 < len(groups) else ""
        pos = guess_pos(text, prev, nxt, previous_pos, before_prev)
        lemma, form = analyse(text, pos)
        words.append(Word(text, start, end, pos, lemma, form, wordnet.entry(lemma, pos) is not None))
        previous_pos = pos
    return words


def _group_expressions(prompt: str, toks: list[Token]) -> list[tuple[int, int]]:
    """Token spans, with WordNet's multi-word expressions ("stop sign", "fire hydrants") joined into one."""
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(toks):
        joined = None
        for n in (3, 2):
            run = toks[i : i + n]
            if len(run) < n or not all(t.is_word for t in run) or is_stopword(run[0].text) or is_stopword(run[-1].text):
                continue
            if any(prompt[a.end : b.start] != " " for a, b in zip(run, run[1:])):
                continue
            phrase = " ".join(t.text for t in run)
            before = toks[i - 1].text.lower() if i else ""
            after_noun = i > 0 and toks[i - 1].is_word and not is_stopword(before)
            if run[0].text.lower().endswith("ing") and after_noun:
                continue  # "a zebra drinking water": a verb and its object, not the compound noun
            if any(t.text.lower().endswith("ing") for t in run) and before not in DETERMINERS and not _common(phrase):
                continue  # "an airplane landing on": a verb, not the compound noun
            if is_expression(phrase) and not _literal(phrase, run[0].text):
                joined = (run[0].start, run[-1].end)
                i += n
                break
        if joined is None:
            joined = (toks[i].start, toks[i].end)
            i += 1
        out.append(joined)
    return out


@functools.lru_cache(maxsize=1)
def _extra_expressions() -> frozenset[str]:
    path = Path(__file__).resolve().parent.parent / "assets" / "expressions.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(l.strip().lower() for l in lines if l.strip() and not l.startswith("#"))


def is_expression(phrase: str) -> bool:
    """Whether a run of words is one expression: WordNet knows it, or our short list of caption compounds does."""
    low = " ".join(phrase.lower().split())
    if any(wordnet.base_forms(low, p) for p in ("n", "v", "a")):
        return True
    head, _, last = low.rpartition(" ")
    extra = _extra_expressions()
    return low in extra or any(f"{head} {b}" in extra for b in wordnet.base_forms(last, "n") + [last[:-1]])


def _common(phrase: str) -> bool:
    """An expression in our list, or one tagged in the SemCor corpus ("oil painting")."""
    low = " ".join(phrase.lower().split())
    return low in _extra_expressions() or any(wordnet.tagged_count(b, "n") > 0 for b in wordnet.base_forms(low, "n"))


def _literal(phrase: str, first: str) -> bool:
    """An adjective and a noun that WordNet happens to list as a name ("black cat" is also the fisher, an
    animal): read literally unless the expression itself is in common use (tagged in SemCor) or ours."""
    return _top_pos(first) == "a" and not _common(phrase)


def _top_pos(word: str) -> str | None:
    options = wordnet.parts_of_speech(word.lower())
    return max(options, key=lambda p: _frequency(word.lower(), p)) if options else None


def guess_pos(text: str, prev: str, nxt: str, previous_pos: str | None, before_prev: str = "") -> str:
    """Pick a part of speech from the ones WordNet allows, by a few context rules, then by frequency.
    `before_prev`: the word before `prev`."""
    low = text.lower()
    options = wordnet.parts_of_speech(low)
    if not options:
        return _guess_unknown(low)
    if len(options) == 1:
        return options[0]

    def keep(allowed: set[str]) -> list[str]:
        return [p for p in options if p in allowed] or options

    if prev in DETERMINERS:
        options = keep({"n", "a"})
    elif prev in VERB_CUES:
        options = keep({"v"})
    elif prev in COPULAS:
        options = keep({"v"} if low.endswith(("ing", "ed")) else {"a", "v"})
    elif previous_pos == "r":
        options = keep({"a"})  # "highly detailed"
    elif previous_pos == "a":
        options = keep({"n", "a"})  # "a blue square": a noun (or another adjective), not the verb "to square"
    elif previous_pos == "n" and before_prev in PREPOSITIONS and low.endswith("s") and "n" in options:
        options = ["n"]  # "with neon lights": a compound noun after a preposition, not "the neon lights (up)"
    elif previous_pos == "n" and low.endswith(("s", "ing", "ed")) and "v" in options:
        options = ["v"]  # "a dog runs", "a man riding a horse"
    elif previous_pos == "n" and prev in wordnet.base_forms(prev, "n") and (not nxt or is_stopword(nxt) or nxt.lower().endswith("ing")):
        options = keep({"n"})  # the head after a singular noun: "a cobalt square", "a steam train crossing"
    if "a" in options and nxt and nxt[0].isalpha() and not is_stopword(nxt) and "n" in wordnet.parts_of_speech(nxt):
        return "a"  # "red car"
    if "n" in options and "a" not in options and low.endswith("s") and previous_pos == "a":
        return "n"
    order = {"n": 0, "v": 1, "a": 2, "r": 3}
    return max(options, key=lambda p: (_frequency(low, p), -order[p]))


def _frequency(word: str, pos: str) -> int:
    return max((wordnet.occurrences(b, pos) for b in wordnet.base_forms(word, pos)), default=0)


def _guess_unknown(word: str) -> str:
    if word.endswith("ly"):
        return "r"
    if word.endswith(("ic", "al", "ous", "ful", "ive", "less", "ish", "istic", "esque")):
        return "a"
    return "n"


def analyse(text: str, pos: str) -> tuple[str, str]:
    """(lemma, form) of a word in a part of speech: "dogs" -> ("dog", "plural"), "flies" (verb) -> ("fly", "3sg")."""
    low = " ".join(text.lower().split())
    bases = [b.replace("_", " ") for b in wordnet.base_forms(low, pos)]
    others = [b for b in bases if b != low]
    if not bases and pos == "n" and " " in low:  # a compound only our list knows: inflect its head
        head, _, last = low.rpartition(" ")
        lemma, form = analyse(last, "n")
        return f"{head} {lemma}", form
    if not others:
        return low, "base"
    if low in bases:  # a lemma that also looks inflected: trust the inflection only for the usual endings
        looks_inflected = {"n": ("s",), "v": ("s", "ing", "ed"), "a": ("er", "est")}.get(pos, ())
        if not low.endswith(looks_inflected) or low.endswith("ss"):
            return low, "base"
    lemma = others[0]
    if pos == "n":
        return lemma, "plural"
    if pos == "v":
        if low.endswith("ing"):
            return lemma, "ing"
        if low.endswith("s") and not low.endswith("ss"):
            return lemma, "3sg"
        return lemma, "past" if not low.endswith("en") else "participle"
    if pos == "a":
        return lemma, "superlative" if low.endswith("st") else "comparative"
    return lemma, "base"


def inflect(lemma: str, pos: str, form: str) -> str:
    """Put a base form into `form`; multi-word expressions inflect their head (last word of a noun, first of a verb)."""
    if form == "base":
        return lemma
    parts = lemma.split(" ")
    if len(parts) > 1:
        i = -1 if pos != "v" else 0
        if pos == "n" and "of" in parts[1:]:
            i = parts.index("of", 1) - 1  # "bird of prey" -> "birds of prey"
        parts[i] = inflect(parts[i], pos, form)
        return " ".join(parts)
    irregular = wordnet.inflected_forms(pos).get(lemma, ())
    if pos == "n" and form == "plural":
        if irregular:
            return irregular[0]
        if lemma.endswith("s") and not lemma.endswith(("ss", "us", "is")):
            return lemma  # already plural or a mass noun: "greens", "falls", "news"
        return _add_s(lemma)
    if pos == "v":
        if form == "3sg":
            return {"be": "is", "have": "has"}.get(lemma) or (lemma + "es" if re.search(r"[^aeiou]o$", lemma) else _add_s(lemma))
        if form == "ing":
            return next((f for f in irregular if f.endswith("ing")), None) or _add_ing(lemma)
        past = [f for f in irregular if not f.endswith(("ing", "s"))]
        if past:
            if form == "participle":
                return next((f for f in past if f.endswith("n")), past[-1])
            return next((f for f in past if not f.endswith("n")), past[0])
        return _add_ed(lemma)
    if pos == "a" and form in ("comparative", "superlative"):
        if irregular:
            return next((f for f in irregular if f.endswith("st" if form == "superlative" else "r")), irregular[0])
        if len(lemma) > 6 or "-" in lemma:
            return ("more " if form == "comparative" else "most ") + lemma
        stem = lemma[:-1] + "i" if re.search(r"[^aeiou]y$", lemma) else lemma
        stem = stem[:-1] if stem.endswith("e") else stem
        return stem + ("er" if form == "comparative" else "est")
    return lemma


def _add_s(word: str) -> str:
    if re.search(r"(s|x|z|ch|sh)$", word):
        return word + "es"
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    return word + "s"


def _doubles(word: str) -> bool:
    return bool(re.search(r"(^|[^aeiou])[aeiou][bdgkmnprt]$", word)) and len(word) <= 4


def _add_ing(word: str) -> str:
    if len(word) <= 2:
        return word + "ing"  # "be" -> "being", "go" -> "going"
    if word.endswith("ie"):
        return word[:-2] + "ying"
    if word.endswith("e") and not word.endswith(("ee", "ye", "oe")):
        return word[:-1] + "ing"
    return word + word[-1] + "ing" if _doubles(word) else word + "ing"


def _add_ed(word: str) -> str:
    if word.endswith("e"):
        return word + "d"
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ied"
    return word + word[-1] + "ed" if _doubles(word) else word + "ed"


def match_case(original: str, substitute: str) -> str:
    """Give the substitute the original's capitalisation: "Dogs" -> "Hounds", "NASA"-style all caps kept."""
    if len(original) > 1 and original.isupper():
        return substitute.upper()
    if original[:1].isupper():
        return substitute[:1].upper() + substitute[1:]
    return substitute


def same_lemma(a: str, b: str) -> bool:
    """Whether two words are forms of one another ("dog"/"dogs", "run"/"ran")."""
    a, b = " ".join(a.lower().split()), " ".join(b.lower().split())
    if a == b:
        return True
    la = {a} | {x.replace("_", " ") for p in wordnet.POS for x in wordnet.base_forms(a, p)}
    lb = {b} | {x.replace("_", " ") for p in wordnet.POS for x in wordnet.base_forms(b, p)}
    return bool(la & lb)
