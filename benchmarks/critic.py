"""Is the shapes world's scorer a critic that knows more than its generator? Compares scorers side by side.

Prints three tables (see dpodiff/shapes/critic_eval.py for what each measures):
  1. near misses by kind of change: share of held-out rendered images whose caption beats the changed one,
     plus the model card's "right caption among itself and 5 near misses" for two shapes;
  2. within-prompt AUC of -loss for the judge's pass, on the generator's images of held-out prompts
     (prompts/shapes_hard.txt, 16 seeds each), per kind of prompt;
  3. every grammar wording: what the scorer reads it as, by text and by images.

    .venv/bin/python benchmarks/critic.py --baseline runs/release2/scorer [--threads 2]
    .venv/bin/python benchmarks/critic.py --baseline runs/release2/scorer --card   # also the model card

The generator's images are cached under --cache, keyed by the generator's weights and the settings, so
scorers measured on different days see the same images. --card writes both scorers' numbers into
dpodiff/shapes/weights/metrics.json ("critic") and rewrites the model card from it.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from dpodiff.objectives.scorers import load_scorer
from dpodiff.shapes import PIPELINE_DIR, SCORER_DIR, WEIGHTS_DIR
from dpodiff.shapes.critic_eval import critic_tables, generate_judged, misses_by_change, synonym_readings, within_prompt_auc
from dpodiff.shapes.evaluate import GUIDANCE, STEPS, retrieval

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ROOT / "prompts" / "shapes_hard.txt"


def read_prompts(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def measure(path: Path, generated) -> dict:
    """Every number of the three tables for one scorer folder."""
    from transformers import CLIPProcessor

    scorer = load_scorer(str(path))
    return {
        "retrieval": retrieval(scorer.model, CLIPProcessor.from_pretrained(path)),
        "misses_by_change": misses_by_change(scorer),
        "auc": {g: asdict(a) for g, a in within_prompt_auc(scorer, generated).items()},
        "synonyms": {w: asdict(r) for w, r in synonym_readings(scorer).items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another scorer folder to compare with (e.g. the previous release's)")
    parser.add_argument("--scorer", type=Path, default=SCORER_DIR, help="the scorer to measure (default: the shipped one)")
    parser.add_argument("--prompts", type=Path, default=PROMPTS)
    parser.add_argument("--seeds", type=int, default=16, help="generated images per prompt (seeds 0..N-1)")
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "critic-bench", help="where generated images are kept")
    parser.add_argument("--out", type=Path, help="also write the numbers as JSON here")
    parser.add_argument("--card", action="store_true", help="write the numbers into the shapes world's metrics and model card")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    generated = generate_judged(PIPELINE_DIR, read_prompts(args.prompts), list(range(args.seeds)), STEPS, GUIDANCE, args.cache)
    print(f"{len(generated.passed)} generated images, judge passes {generated.passed.mean():.1%}")
    scorers = {"baseline": args.baseline, "scorer": args.scorer} if args.baseline else {"scorer": args.scorer}
    results = {name: measure(path, generated) for name, path in scorers.items()}
    print(critic_tables(results))
    print(f"\n{(time.time() - start) / 60:.1f} min")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    if args.card:
        from dpodiff.shapes.card import write_card

        metrics = json.loads((WEIGHTS_DIR / "metrics.json").read_text())
        metrics["critic"] = results
        metrics["scorer_retrieval"] = results["scorer"]["retrieval"]
        (WEIGHTS_DIR / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        write_card(metrics)


if __name__ == "__main__":
    main()
