"""How similar are real synonym swaps to their prompt, and how similar are meaning-changing swaps?

Picks the attack's default --min-similarity: for every prompt of prompts/varied.txt it builds
the offline synonym space and antonym space (dpodiff.spaces.build, source auto), makes
  - one-word synonym swaps (what an attack should be allowed),
  - two-word synonym swaps,
  - one-word swaps to an opposite / sister term (red -> blue, dog -> cat: a different prompt),
and prints, for each threshold, the share of each kind the constraint would accept.

    .venv/bin/python benchmarks/similarity_threshold.py [--model all-MiniLM-L6-v2]
    .venv/bin/python benchmarks/similarity_threshold.py --labelled

--labelled: the same constraint on the labelled synonyms of benchmarks/data/sense_labels.jsonl (each
one-word swap labelled right sense / wrong sense or obscure / offensive by hand): the share of wrong and
of right rewordings each threshold accepts. A default that let through at most 2% of the wrong ones is
what an attack needs to report no false findings.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path

from dpodiff.objectives.similarity import load_sentence_model
from dpodiff.spaces import find_word
from dpodiff.spaces.build import build_space

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ROOT / "prompts" / "varied.txt"
LABELS = ROOT / "benchmarks" / "data" / "sense_labels.jsonl"
THRESHOLDS = (0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99)


def swap(prompt: str, start: int, end: int, word: str) -> str:
    return prompt[:start] + word + prompt[end:]


def swaps(prompt: str, rng: random.Random) -> dict[str, list[str]]:
    synonyms = build_space(prompt, "synonym")
    antonyms = build_space(prompt, "antonym")
    out = {"1 synonym": [], "2 synonyms": [], "1 opposite": []}
    for span in synonyms.positive:
        out["1 synonym"] += [swap(prompt, span.start, span.end, c) for c in span.choices[1:]]
    for a, b in itertools.combinations(synonyms.positive, 2):
        ca, cb = rng.choice(a.choices[1:]), rng.choice(b.choices[1:])
        out["2 synonyms"].append(swap(swap(prompt, b.start, b.end, cb), a.start, a.end, ca))
    for slot in antonyms.negative:
        found = find_word(prompt, slot.name)
        if found:
            out["1 opposite"] += [swap(prompt, *found, c) for c in slot.choices[1:]]
    return out


def labelled(model) -> None:
    """Accepted shares of the labelled one-word synonym swaps, wrong and right apart, per threshold."""
    sims: dict[bool, list[float]] = {True: [], False: []}
    rows = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]
    for row in rows:
        if row["kind"] != "synonym" or not (found := find_word(row["prompt"], row["word"])):
            continue
        emb = model.encode([row["prompt"], swap(row["prompt"], *found, row["choice"])], normalize_embeddings=True, convert_to_tensor=True)
        sims[row["label"] == "right"].append(float(emb[1] @ emb[0]))
    print(f"{LABELS.name}: {len(sims[True])} right-sense and {len(sims[False])} wrong (wrong sense, obscure or offensive) one-word swaps")
    print("| min similarity | wrong accepted | right accepted |")
    print("|---|---|---|")
    for threshold in THRESHOLDS:
        print(f"| {threshold:.2f} | " + " | ".join(f"{sum(v >= threshold for v in sims[k]) / len(sims[k]):.1%}" for k in (False, True)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--labelled", action="store_true", help="only the labelled synonyms of benchmarks/data/sense_labels.jsonl")
    args = parser.parse_args()
    model = load_sentence_model(args.model)
    if args.labelled:
        return labelled(model)
    rng = random.Random(0)
    sims: dict[str, list[float]] = {}
    prompts = [p.strip() for p in PROMPTS.read_text().splitlines() if p.strip()]
    for prompt in prompts:
        for kind, texts in swaps(prompt, rng).items():
            if texts:
                emb = model.encode([prompt] + texts, normalize_embeddings=True, convert_to_tensor=True)
                sims.setdefault(kind, []).extend((emb[1:] @ emb[0]).tolist())
    kinds = list(sims)
    print(f"{len(prompts)} prompts; sentence model {args.model}")
    print("| swap | n | median | 10th pct | 90th pct |")
    print("|---|---|---|---|---|")
    for kind in kinds:
        s = sorted(sims[kind])
        print(f"| {kind} | {len(s)} | {s[len(s) // 2]:.3f} | {s[len(s) // 10]:.3f} | {s[9 * len(s) // 10]:.3f} |")
    print()
    print("| min similarity | " + " | ".join(f"{k} accepted" for k in kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for threshold in (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9):
        print(f"| {threshold:.2f} | " + " | ".join(f"{sum(v >= threshold for v in sims[k]) / len(sims[k]):.0%}" for k in kinds) + " |")


if __name__ == "__main__":
    main()
