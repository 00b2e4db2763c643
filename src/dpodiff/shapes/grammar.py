"""Caption grammar of the shapes world: scenes, their wordings, and parsing back.

A :class:`Scene` is the meaning (canonical words); a caption is one wording of
it. Every concept has a common word and synonyms drawn at deliberately uneven
frequencies during training, so that rare wordings are understood worse by the
trained models: that gap is what prompt attacks exploit and what prompt
improvement repairs. The parser accepts every synonym (even ones never used in
training), so the judge can check any wording.

Like photographs in SD's training data, some training images are flawed
(blurry, noisy, faded, dark, cropped, or showing two or three copies of the
object) and only some of their captions say so. The model then produces such
flaws unasked now and then, and a negative prompt that names them ("blurry",
"two") can push them away, as it does in real Stable Diffusion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np

# Canonical colours and their RGB values; all pairwise far apart so that a
# nearest-palette rule separates them even on blurry generated images.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 145, 30),
    "yellow": (245, 225, 50),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "purple": (140, 60, 190),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
}
COLOURS: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SIZES: tuple[str, ...] = ("small", "large")
RELATIONS: tuple[str, ...] = ("above", "below", "left of", "right of")

# Wordings of each canonical concept with their relative training weight.
# Weight 0 means "never seen in training" (still parsed and judged).
SYNONYMS: dict[str, dict[str, float]] = {
    "red": {"red": 1.0, "crimson": 0.05, "scarlet": 0.01},
    "orange": {"orange": 1.0, "tangerine": 0.02},
    "yellow": {"yellow": 1.0, "golden": 0.05},
    "green": {"green": 1.0, "emerald": 0.02},
    "blue": {"blue": 1.0, "azure": 0.02, "cobalt": 0.0},
    "purple": {"purple": 1.0, "violet": 0.08},
    "white": {"white": 1.0, "ivory": 0.02},
    "black": {"black": 1.0, "ebony": 0.01},
    "circle": {"circle": 1.0, "disk": 0.04, "disc": 0.0},
    "square": {"square": 1.0, "box": 0.04},
    "triangle": {"triangle": 1.0},
    "small": {"small": 1.0, "tiny": 0.15, "little": 0.03},
    "large": {"large": 1.0, "big": 0.3, "huge": 0.03},
    "above": {"above": 1.0, "over": 0.1},
    "below": {"below": 1.0, "under": 0.1, "beneath": 0.02},
    "left of": {"to the left of": 1.0, "left of": 0.1},
    "right of": {"to the right of": 1.0, "right of": 0.1},
}

# Image flaws a caption can name as trailing quality tags ("a red circle, blurry").
DEFECTS: tuple[str, ...] = ("blurry", "noisy", "faded", "dark", "cropped")
# Counting words for several copies of one object ("two red circles"), and plurals.
COUNT_WORDS: dict[int, str] = {2: "two", 3: "three"}
PLURALS: dict[str, str] = {"circle": "circles", "disk": "disks", "disc": "discs", "square": "squares",
                           "box": "boxes", "triangle": "triangles"}

# Scene-type mix of the training distribution.
P_SINGLE, P_AND, P_RELATION = 0.45, 0.25, 0.3
P_SIZE_WORD = 0.4  # single-shape captions that name a size
P_BACKGROUND_WORD = 0.5  # captions that name the background
P_DEFECT = 0.12  # training images with one flaw from DEFECTS
P_COPIES = 0.08  # single-shape training scenes drawn as two or three copies
P_NAMED = 0.5  # share of flaws and copies that the training caption names
# Caption styles beside the sentence (release 3 on), as in SD's web alt-text: a tag list in any order
# ("yellow, circle, large, white background"), one tag alone ("yellow", "circle", "two"), the flaw tags
# alone ("blurry") for an image whose caption would name a flaw, and a partial caption naming one of two
# shapes. A negative prompt is then text the model has seen, and pushes away from what it names.
P_TAGS, P_ONE_TAG, P_FLAWS_ALONE, P_PARTIAL = 0.15, 0.08, 0.3, 0.15
CAPTION_DROPOUT = 0.1  # empty captions, which classifier-free guidance needs


@dataclass(frozen=True)
class CaptionMix:
    """How training images are flawed and captioned; the release's training.json names its mix.

    The defaults are release 3's. ``count_alone``: the count word alone ("two") is, like the flaw tags
    alone, a caption of copies, so that a negative "two, three" names something the model has learnt.
    """

    varied: bool = True  # SD's caption styles (see P_TAGS), else sentences only (releases 1 and 2)
    defect: float = P_DEFECT
    copies: float = P_COPIES
    named: float = P_NAMED
    flaws_alone: float = P_FLAWS_ALONE
    partial: float = P_PARTIAL
    dropout: float = CAPTION_DROPOUT
    count_alone: bool = False


# --captions of dpodiff.shapes.train. "named" follows SD's web data more closely than release 3: a quarter
# of the images flawed and most flaws and copies named, often alone; fewer partial captions (they taught
# that "a red circle" may show a second shape).
CAPTION_MIXES: dict[str, CaptionMix] = {
    "sentences": CaptionMix(varied=False),
    "varied": CaptionMix(),
    "named": CaptionMix(defect=0.25, copies=0.15, named=0.8, flaws_alone=0.5, partial=0.05, dropout=0.15,
                        count_alone=True),
}


@dataclass(frozen=True)
class ShapeSpec:
    """One object: canonical shape, colour and optional size word."""

    shape: str
    colour: str
    size: str | None = None


@dataclass(frozen=True)
class Scene:
    """The meaning of a caption. ``relation`` None with two shapes means "and".

    ``background`` None means the caption does not name it (the image then has
    some background colour different from the shapes'). ``count`` > 1 means that
    many copies of the one shape; ``defects`` are the image's flaws (DEFECTS).
    """

    shapes: tuple[ShapeSpec, ...]
    relation: str | None = None
    background: str | None = None
    count: int = 1
    defects: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        if len(self.shapes) == 1:
            return "single"
        return "relation" if self.relation else "two"

    def colours(self) -> list[str]:
        out = [s.colour for s in self.shapes]
        if self.background:
            out.append(self.background)
        return out


@dataclass
class Wording:
    """Which word to use for each concept; ``rare`` draws synonyms by weight."""

    choices: dict[str, str] = field(default_factory=dict)

    def word(self, concept: str) -> str:
        return self.choices.get(concept, next(iter(SYNONYMS[concept])))


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _np(spec: ShapeSpec, pick) -> str:
    words = []
    if spec.size:
        words.append(pick(spec.size))
    words += [pick(spec.colour), pick(spec.shape)]
    return f"{_article(words[0])} {' '.join(words)}"


def render_caption(scene: Scene, pick=None) -> str:
    """Word a scene; ``pick(concept) -> word`` chooses synonyms (default: common word)."""
    pick = pick or (lambda concept: next(iter(SYNONYMS[concept])))
    if scene.count > 1:
        spec = scene.shapes[0]
        text = f"{COUNT_WORDS[scene.count]} {pick(spec.colour)} {PLURALS[pick(spec.shape)]}"
    else:
        text = _np(scene.shapes[0], pick)
    if len(scene.shapes) == 2:
        link = pick(scene.relation) if scene.relation else "and"
        text += f" {link} {_np(scene.shapes[1], pick)}"
    if scene.background:
        bg = pick(scene.background)
        text += f" on {_article(bg)} {bg} background"
    return "".join([text] + [f", {d}" for d in scene.defects])


def synonym_picker(rng: np.random.Generator):
    """A ``pick`` that draws each concept's wording at its training frequency."""

    def pick(concept: str) -> str:
        words = list(SYNONYMS[concept])
        w = np.array([SYNONYMS[concept][x] for x in words], dtype=float)
        return words[rng.choice(len(words), p=w / w.sum())]

    return pick


def sample_scene(rng: np.random.Generator, kind: str | None = None) -> Scene:
    """Draw a scene from the training distribution (colours all distinct)."""
    if kind is None:
        kind = rng.choice(["single", "two", "relation"], p=[P_SINGLE, P_AND, P_RELATION])
    n = 1 if kind == "single" else 2
    colours = rng.choice(len(COLOURS), size=n + 1, replace=False)
    specs = []
    for i in range(n):
        size = None
        if n == 1 and rng.random() < P_SIZE_WORD:
            size = SIZES[rng.integers(len(SIZES))]
        specs.append(ShapeSpec(SHAPES[rng.integers(len(SHAPES))], COLOURS[colours[i]], size))
    relation = RELATIONS[rng.integers(len(RELATIONS))] if kind == "relation" else None
    background = COLOURS[colours[n]] if rng.random() < P_BACKGROUND_WORD else None
    return Scene(tuple(specs), relation, background)


def sample_caption(rng: np.random.Generator, kind: str | None = None) -> tuple[Scene, str]:
    """A flawless scene and its wording (synonyms at training frequency)."""
    scene = sample_scene(rng, kind)
    return scene, render_caption(scene, synonym_picker(rng))


def sample_shown(rng: np.random.Generator, p_copies: float = P_COPIES, p_defect: float = P_DEFECT) -> Scene:
    """What a training image shows: a scene, some single shapes as two or three copies, some with a flaw."""
    shown = sample_scene(rng)
    if shown.kind == "single" and rng.random() < p_copies:
        spec = shown.shapes[0]
        shown = replace(shown, shapes=(ShapeSpec(spec.shape, spec.colour),), count=int(rng.integers(2, 4)))
    if rng.random() < p_defect:
        shown = replace(shown, defects=(DEFECTS[rng.integers(len(DEFECTS))],))
    return shown


def tags(scene: Scene, pick=None) -> list[list[str]]:
    """The scene as groups of tags: one per object ([count,] [size,] colour, shape), "<colour> background",
    one per flaw ([["two", "red", "circles"]]; [["small", "blue", "square"], ["white background"], ["blurry"]]).
    Relations are no tag."""
    pick = pick or (lambda concept: next(iter(SYNONYMS[concept])))
    out: list[list[str]] = []
    for spec in scene.shapes:
        shape = pick(spec.shape)
        if scene.count > 1:
            out.append([COUNT_WORDS[scene.count], pick(spec.colour), PLURALS[shape]])
        else:
            out.append(([pick(spec.size)] if spec.size else []) + [pick(spec.colour), shape])
    if scene.background:
        out.append([f"{pick(scene.background)} background"])
    return out + [[d] for d in scene.defects]


def varied_caption(named: Scene, pick, rng: np.random.Generator, mix: CaptionMix = CaptionMix()) -> str:
    """One caption of ``named`` in one of the styles SD's training captions have (see P_TAGS): the flaw tags
    alone (``mix.flaws_alone`` of the captions that name a flaw, or copies where ``mix.count_alone``), a
    partial caption (``mix.partial`` of two-shape scenes), a tag list (P_TAGS: groups in any order; one
    object's tags too in any order, but two objects' tags stay with their object), one tag (P_ONE_TAG),
    else the sentence."""
    alone = list(named.defects) + ([COUNT_WORDS[named.count]] if mix.count_alone and named.count > 1 else [])
    if alone and rng.random() < mix.flaws_alone:
        return ", ".join(alone)
    if len(named.shapes) == 2 and rng.random() < mix.partial:
        one = named.shapes[int(rng.integers(2))]
        return render_caption(replace(named, shapes=(one,), relation=None), pick)
    r = rng.random()
    if r < P_TAGS + P_ONE_TAG:
        groups = tags(named, pick)
        if len(named.shapes) == 1:
            groups = [[t] for g in groups for t in g]
        if r >= P_TAGS:
            words = [t for g in groups for t in g]
            return words[int(rng.integers(len(words)))]
        return ", ".join(t for i in rng.permutation(len(groups)) for t in groups[i])
    return render_caption(named, pick)


def sample_training_pair(rng: np.random.Generator, mix: CaptionMix = CAPTION_MIXES["sentences"]) -> tuple[Scene, Scene, str]:
    """What a training image shows (flaws and copies included), what its caption names, and the caption.

    A share of images is flawed or shows extra copies, and the caption names
    that only with probability ``mix.named``, as web captions rarely say "blurry".
    ``mix.varied``: the caption takes one of the styles of :func:`varied_caption`, else it is the sentence.
    """
    shown = sample_shown(rng, mix.copies, mix.defect)
    named = replace(shown, count=shown.count if rng.random() < mix.named else 1,
                    defects=shown.defects if rng.random() < mix.named else ())
    pick = synonym_picker(rng)
    return shown, named, varied_caption(named, pick, rng, mix) if mix.varied else render_caption(named, pick)


# ---------------------------------------------------------------- parsing

def _alternation(concepts) -> tuple[str, dict[str, str]]:
    lookup = {w: c for c in concepts for w in SYNONYMS[c]}
    words = sorted(lookup, key=len, reverse=True)
    return "|".join(re.escape(w) for w in words), lookup


_COLOUR_RE, _COLOUR_OF = _alternation(COLOURS)
_SHAPE_RE, _SHAPE_OF = _alternation(SHAPES)
_SIZE_RE, _SIZE_OF = _alternation(SIZES)
_REL_RE, _REL_OF = _alternation(RELATIONS)
_SINGULAR = {plural: word for word, plural in PLURALS.items()}
_PLURAL_RE = "|".join(re.escape(w) for w in sorted(_SINGULAR, key=len, reverse=True))
_COUNT_OF = {word: n for n, word in COUNT_WORDS.items()}
_NP = rf"an? (?:(?P<size{{i}}>{_SIZE_RE}) )?(?P<colour{{i}}>{_COLOUR_RE}) (?P<shape{{i}}>{_SHAPE_RE})"
_COPIES = rf"(?P<count>{'|'.join(_COUNT_OF)}) (?P<colour_n>{_COLOUR_RE}) (?P<shape_n>{_PLURAL_RE})"
_DEFECT_RE = "|".join(DEFECTS)
_CAPTION = re.compile(
    "^(?:"
    + _COPIES
    + "|"
    + _NP.format(i=1)
    + rf"(?: (?P<link>and|{_REL_RE}) "
    + _NP.format(i=2)
    + ")?)"
    + rf"(?: on an? (?P<bg>{_COLOUR_RE}) background)?"
    + rf"(?P<defects>(?: (?:{_DEFECT_RE}))*)$"
)


def normalise(caption: str) -> str:
    text = caption.lower().strip().rstrip(".!").replace(",", " ")
    return re.sub(r"\s+", " ", text)


def parse(caption: str) -> Scene | None:
    """The scene a caption describes, or None if it is outside the grammar.

    Captions that reuse a colour for two things (two shapes, or a shape and the
    background) are rejected too: the generator never draws them, so no verdict
    on them would be trustworthy.
    """
    m = _CAPTION.match(normalise(caption))
    if not m:
        return None
    defects = tuple(m["defects"].split())
    background = _COLOUR_OF[m["bg"]] if m["bg"] else None
    if m["count"]:
        spec = ShapeSpec(_SHAPE_OF[_SINGULAR[m["shape_n"]]], _COLOUR_OF[m["colour_n"]])
        return _distinct_colours(Scene((spec,), None, background, _COUNT_OF[m["count"]], defects))
    specs = [ShapeSpec(_SHAPE_OF[m["shape1"]], _COLOUR_OF[m["colour1"]],
                       _SIZE_OF[m["size1"]] if m["size1"] else None)]
    relation = None
    if m["link"]:
        specs.append(ShapeSpec(_SHAPE_OF[m["shape2"]], _COLOUR_OF[m["colour2"]],
                               _SIZE_OF[m["size2"]] if m["size2"] else None))
        relation = None if m["link"] == "and" else _REL_OF[m["link"]]
    return _distinct_colours(Scene(tuple(specs), relation, background, defects=defects))


def _distinct_colours(scene: Scene) -> Scene | None:
    colours = scene.colours()
    if len(set(colours)) != len(colours):
        return None
    return scene


def training_frequencies() -> dict[str, dict[str, float]]:
    """Share of each wording among its concept's mentions in training captions."""
    out = {}
    for concept, words in SYNONYMS.items():
        total = sum(words.values())
        out[concept] = {w: v / total for w, v in words.items()}
    return out


def near_misses(scene: Scene, rng: np.random.Generator, n: int = 1) -> list[Scene]:
    """Scenes that differ from ``scene`` in exactly one way (hard negatives).

    Two-shape scenes favour swapped colours, swapped shapes and other relations,
    the differences a bag-of-words model cannot see.
    """
    out: list[Scene] = []
    for _ in range(n * 10):
        if len(out) >= n:
            break
        cand = _one_change(scene, rng)
        if cand is not None and not same_meaning(cand, scene) and cand not in out:
            out.append(cand)
    return out


_INVERSE = {"above": "below", "below": "above", "left of": "right of", "right of": "left of"}


def canonical(scene: Scene) -> Scene:
    """One representative per meaning: "and" is unordered, "B below A" is "A above B"."""
    if len(scene.shapes) < 2:
        return scene
    a, b = scene.shapes
    if scene.relation is None:
        shapes = tuple(sorted(scene.shapes, key=lambda s: (s.colour, s.shape, s.size or "")))
        return replace(scene, shapes=shapes)
    if scene.relation in ("below", "right of"):
        return replace(scene, shapes=(b, a), relation=_INVERSE[scene.relation])
    return scene


def flipped(scene: Scene) -> Scene:
    """The same meaning with the two objects named the other way round ("B below A" for "A above B")."""
    if len(scene.shapes) < 2:
        return scene
    return replace(scene, shapes=scene.shapes[::-1], relation=_INVERSE[scene.relation] if scene.relation else None)


def wordings(word: str) -> list[str]:
    """The grammar's other wordings of a word ("blue" -> azure, cobalt; "circles" -> disks, discs), rarest
    first: the shapes world's own synonyms, which its reader verifies (dpodiff.objectives.judge.find_wordings)."""
    low = word.lower()
    singular = _SINGULAR.get(low)
    for words in SYNONYMS.values():
        if (singular or low) in words:
            others = sorted((x for x in words if x != (singular or low) and " " not in x), key=words.get)
            return [PLURALS[x] for x in others if x in PLURALS] if singular else others
    return []


def meaning(caption: str) -> Scene | None:
    """What a caption means, one value per meaning ("a disc above a box" == "a box below a circle"), or None
    outside the grammar: the shapes world's reader (dpodiff.objectives.judge.find_reader)."""
    scene = parse(caption)
    return canonical(scene) if scene is not None else None


def same_meaning(a: Scene, b: Scene) -> bool:
    return canonical(a) == canonical(b)


CHANGES = ("colour", "shape", "size", "background", "count", "swap_colour", "swap_shape", "relation")


def _weighted_changes(scene: Scene) -> list[str]:
    """Changes that apply to ``scene``, repeated by how often near_misses draws them: for two shapes, what a
    bag of words cannot see (swapped colours, the relation) comes up more often."""
    ops = ["colour", "shape"]
    if len(scene.shapes) == 2:
        ops += ["swap_colour", "swap_shape", "swap_colour"]
        if scene.relation:
            ops += ["relation"] * 3
    elif scene.shapes[0].size:
        ops += ["size"]
    if scene.count > 1:
        ops += ["count", "count"]
    if scene.background:
        ops += ["background"]
    return ops


def changes(scene: Scene) -> list[str]:
    """The kinds of one-thing change (CHANGES) that apply to ``scene``."""
    return list(dict.fromkeys(_weighted_changes(scene)))


def _one_change(scene: Scene, rng: np.random.Generator) -> Scene | None:
    ops = _weighted_changes(scene)
    return changed(scene, ops[rng.integers(len(ops))], rng)


def changed(scene: Scene, op: str, rng: np.random.Generator) -> Scene | None:
    """``scene`` with one thing changed (``op`` one of CHANGES); None when that change is not possible."""
    specs = list(scene.shapes)
    free = [c for c in COLOURS if c not in set(scene.colours())]
    i = int(rng.integers(len(specs)))
    s = specs[i]
    if op == "colour":
        specs[i] = ShapeSpec(s.shape, free[rng.integers(len(free))], s.size)
    elif op == "shape":
        others = [x for x in SHAPES if x != s.shape]
        specs[i] = ShapeSpec(others[rng.integers(len(others))], s.colour, s.size)
    elif op == "size":
        specs[i] = ShapeSpec(s.shape, s.colour, "large" if s.size == "small" else "small")
    elif op == "swap_colour":
        a, b = specs
        if a.colour == b.colour:
            return None
        specs = [ShapeSpec(a.shape, b.colour, a.size), ShapeSpec(b.shape, a.colour, b.size)]
    elif op == "swap_shape":
        a, b = specs
        if a.shape == b.shape:
            return None
        specs = [ShapeSpec(b.shape, a.colour, a.size), ShapeSpec(a.shape, b.colour, b.size)]
    elif op == "relation":
        others = [r for r in RELATIONS if r != scene.relation]
        return replace(scene, relation=others[rng.integers(len(others))])
    elif op == "background":
        return replace(scene, background=free[rng.integers(len(free))])
    elif op == "count":
        others = [n for n in (1, *COUNT_WORDS) if n != scene.count]
        return replace(scene, count=others[rng.integers(len(others))])
    else:
        raise ValueError(f"unknown change {op!r}; the changes are {', '.join(CHANGES)}")
    return replace(scene, shapes=tuple(specs))
