"""Measure the shipped shapes world and write its model card.

Everything here loads the float16 weights from the package (as float32), so
the numbers describe what users get, not the training checkpoints.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from . import PIPELINE_DIR, SCORER_DIR, WEIGHTS_DIR
from .grammar import (
    COLOURS, DEFECTS, RELATIONS, SHAPES, SIZES, SYNONYMS, Scene, ShapeSpec, near_misses, render_caption,
    same_meaning, sample_caption, sample_scene, training_frequencies,
)
from .judge import judge
from .render import render, render_wrong
from .sampling import GUIDANCE, QUALITY_NEGATIVE, STEPS, generate  # noqa: F401  (re-exported)

EVAL_SEED = 31337


@dataclass
class Rate:
    """A pass rate with its sample size, plus per-check pass rates."""

    n: int
    rate: float
    checks: dict[str, float] = field(default_factory=dict)


def _rate(verdicts) -> Rate:
    verdicts = list(verdicts)
    checks: dict[str, list[bool]] = {}
    for v in verdicts:
        for k, x in v.checks.items():
            checks.setdefault(k, []).append(x)
    return Rate(len(verdicts), float(np.mean([v.passed for v in verdicts])),
                {k: float(np.mean(x)) for k, x in sorted(checks.items())})


# ---------------------------------------------------------------- judge on ground truth

def copies_scene(rng: np.random.Generator) -> Scene:
    """A scene of two or three copies of one coloured shape ("two red circles")."""
    scene = sample_scene(rng, "single")
    spec = scene.shapes[0]
    return replace(scene, shapes=(ShapeSpec(spec.shape, spec.colour),), count=int(rng.integers(2, 4)))


def judge_ground_truth(n: int = 1000) -> dict[str, float]:
    """Pass rate on true images; fail rate on images with one colour or one shape wrong.

    Also the pass rate of true images with each flaw: how far a flaw breaks what the judge can see
    (a dark image's colours are gone, a blurry one usually still shows its shapes).
    """
    rng = np.random.default_rng(EVAL_SEED)
    out = {}
    by_kind: dict[str, list[bool]] = {}
    for i in range(n):
        scene, caption = sample_caption(rng)
        if i % 5 == 4:
            scene = copies_scene(rng)
            caption = render_caption(scene)
        ok = judge(caption, render(scene, rng)).passed
        by_kind.setdefault("copies" if scene.count > 1 else scene.kind, []).append(ok)
    out["true_images_pass"] = float(np.mean(sum(by_kind.values(), [])))
    for kind, oks in by_kind.items():
        out[f"true_images_pass_{kind}"] = float(np.mean(oks))
    for what in ("colour", "shape"):
        fails = []
        for _ in range(n):
            scene, caption = sample_caption(rng)
            image = render_wrong(scene, rng, what)
            fails.append(not judge(caption, image).passed)
        out[f"wrong_{what}_fail"] = float(np.mean(fails))
    for defect in DEFECTS:
        oks = []
        for _ in range(n // 5):
            scene, caption = sample_caption(rng)
            oks.append(judge(caption, render(replace(scene, defects=(defect,)), rng)).passed)
        out[f"flawed_{defect}_pass"] = float(np.mean(oks))
    return out


# ---------------------------------------------------------------- CLIP retrieval

def _clip_embed(model, processor, images, captions):
    from .clip import image_features, text_features

    with torch.no_grad():
        px = processor(images=images, return_tensors="pt")["pixel_values"]
        ids = processor.tokenizer(captions, padding="max_length", truncation=True,
                                  max_length=processor.tokenizer.model_max_length,
                                  return_tensors="pt").input_ids
        return image_features(model, px), text_features(model, ids)


def retrieval(model, processor, n: int = 1000, n_pairs: int = 500) -> dict[str, float]:
    """Right caption among 20 random ones; among 5 near misses (+ itself) for two-shape images."""
    rng = np.random.default_rng(EVAL_SEED + 1)
    hits = []
    for start in range(0, n, 100):
        scenes = [sample_scene(rng) for _ in range(100)]
        images = [render(s, rng) for s in scenes]
        captions, owner = [], []
        for i, s in enumerate(scenes):
            cands = [s]
            while len(cands) < 20:
                o = sample_scene(rng)
                if not any(same_meaning(o, c) for c in cands):
                    cands.append(o)
            captions += [render_caption(c) for c in cands]
            owner.append(len(captions) - 20)
        img, txt = _clip_embed(model, processor, images, captions)
        sims = (img[:, None, :] * txt.view(100, 20, -1)).sum(-1)
        hits += (sims.argmax(1) == 0).tolist()
    out = {"random20": float(np.mean(hits))}
    for kind in ("two", "relation"):
        hits, pair_hits = [], []
        for start in range(0, n_pairs, 100):
            scenes = [sample_scene(rng, kind) for _ in range(100)]
            images = [render(s, rng) for s in scenes]
            captions = []
            for s in scenes:
                misses = near_misses(s, rng, 5)
                while len(misses) < 5:
                    misses.append(sample_scene(rng, kind))
                captions += [render_caption(c) for c in [s] + misses]
            img, txt = _clip_embed(model, processor, images, captions)
            sims = (img[:, None, :] * txt.view(100, 6, -1)).sum(-1)
            hits += (sims.argmax(1) == 0).tolist()
            pair_hits += (sims[:, :1] > sims[:, 1:]).flatten().tolist()
        out[f"near_miss6_{kind}"] = float(np.mean(hits))
        out[f"near_miss_pairwise_{kind}"] = float(np.mean(pair_hits))
    return out


# ---------------------------------------------------------------- generation

def _rare_words() -> list[tuple[str, str]]:
    return [(c, w) for c, ws in SYNONYMS.items() for w in list(ws)[1:]]


def _with_word(scene: Scene, concept: str, word: str) -> str:
    return render_caption(scene, lambda c: word if c == concept else next(iter(SYNONYMS[c])))


def _scene_with(concept: str, rng) -> Scene:
    """A test scene that mentions ``concept``."""
    from .grammar import ShapeSpec

    while True:
        if concept in RELATIONS:
            s = sample_scene(rng, "relation")
            return Scene(s.shapes, concept, s.background)
        s = sample_scene(rng, "single")
        spec = s.shapes[0]
        if concept in SHAPES:
            return Scene((ShapeSpec(concept, spec.colour, spec.size),), None, s.background)
        if concept in SIZES:
            return Scene((ShapeSpec(spec.shape, spec.colour, concept),), None, s.background)
        if concept != s.background:
            return Scene((ShapeSpec(spec.shape, concept, spec.size),), None, s.background)


def generation_quality(pipe, per_type: int = 100, per_word: int = 12) -> dict:
    """Judge pass rates of generated images by prompt type, by synonym, and by guidance."""
    rng = np.random.default_rng(EVAL_SEED + 2)
    seeds = list(range(per_type))
    out: dict = {"by_type": {}, "by_word": {}, "by_guidance": {}}
    sets = {
        "single shape, common words": [render_caption(sample_scene(rng, "single")) for _ in range(per_type)],
        "single shape, colour + shape only": [
            render_caption(Scene((ShapeSpec(SHAPES[rng.integers(3)], COLOURS[rng.integers(8)]),)))
            for _ in range(per_type)],
        "two shapes (and)": [render_caption(sample_scene(rng, "two")) for _ in range(per_type)],
        "two shapes with relation": [render_caption(sample_scene(rng, "relation")) for _ in range(per_type)],
    }
    words = [(c, w) for c, w in _rare_words() if c not in RELATIONS]
    rare = []
    for i in range(per_type):
        c, w = words[i % len(words)]
        rare.append(_with_word(_scene_with(c, rng), c, w))
    sets["single shape, one rare synonym"] = rare
    sets["two or three copies (counting words)"] = [render_caption(copies_scene(rng)) for _ in range(per_type)]
    for name, prompts in sets.items():
        images = generate(pipe, prompts, seeds)
        out["by_type"][name] = asdict(_rate(judge(p, im) for p, im in zip(prompts, images)))
        out["by_type"][name]["examples"] = prompts[:3]
    out["quality_negative"] = {"negative": QUALITY_NEGATIVE}
    for name in ("single shape, common words", "two shapes (and)"):
        images = generate(pipe, sets[name], seeds, negative=QUALITY_NEGATIVE)
        out["quality_negative"][name] = _rate(judge(p, im) for p, im in zip(sets[name], images)).rate
    freq = training_frequencies()
    for c, w in _rare_words():
        scenes = [_scene_with(c, rng) for _ in range(per_word)]
        common = [render_caption(s) for s in scenes]
        syn = [_with_word(s, c, w) for s in scenes]
        ims = generate(pipe, common + syn, list(range(per_word)) * 2)
        out["by_word"][w] = {
            "concept": c, "training_share": round(freq[c][w], 4),
            "pass_with_synonym": float(np.mean([judge(p, im).passed for p, im in zip(syn, ims[per_word:])])),
            "pass_with_common_word": float(np.mean([judge(p, im).passed for p, im in zip(common, ims[:per_word])])),
        }
    prompts = sets["single shape, common words"]
    for g in (1.0, 2.0, 3.0, 5.0, 7.5, 10.0):
        if g == GUIDANCE:
            out["by_guidance"][str(g)] = out["by_type"]["single shape, common words"]["rate"]
            continue
        images = generate(pipe, prompts, seeds, guidance=g)
        out["by_guidance"][str(g)] = _rate(judge(p, im) for p, im in zip(prompts, images)).rate
    images = generate(pipe, prompts, seeds, steps=50)
    out["single_common_50_steps"] = _rate(judge(p, im) for p, im in zip(prompts, images)).rate
    out["guidance"] = GUIDANCE
    return out


def sampling_time(pipe) -> dict[str, float]:
    """Seconds per image: one image at a time at 25 and 50 steps, and in a batch of 50."""
    out = {}
    for steps in (25, 50):
        times = []
        for s in range(4):
            t = time.perf_counter()
            generate(pipe, ["a red circle"], [s], steps=steps)
            times.append(time.perf_counter() - t)
        out[f"single_image_{steps}_steps_s"] = float(np.median(times[1:]))
    t = time.perf_counter()
    generate(pipe, ["a red circle"] * 50, list(range(50)))
    out["batched_25_steps_s_per_image"] = (time.perf_counter() - t) / 50
    return out


def improvement_probe(pipe, words: list[str], n_seeds: int = 8) -> list[dict]:
    """For poorly rendered wordings: does some negative prompt repair them (by the judge)?

    Candidates are the other values of the concept the rare word stands for,
    i.e. what an antonym space would offer.
    """
    rng = np.random.default_rng(EVAL_SEED + 3)
    concept_of = {w: c for c, ws in SYNONYMS.items() for w in ws}
    results = []
    for word in words:
        c = concept_of[word]
        scene = _scene_with(c, rng)
        prompt = _with_word(scene, c, word)
        group = COLOURS if c in COLOURS else SHAPES if c in SHAPES else SIZES if c in SIZES else RELATIONS
        negatives = [""] + [x for x in group if x != c and x not in scene.colours()]
        seeds = list(range(n_seeds))
        rates = {}
        for neg in negatives:
            ims = generate(pipe, [prompt] * n_seeds, seeds, negative=neg or None)
            rates[neg] = float(np.mean([judge(prompt, im).passed for im in ims]))
        best = max(rates, key=rates.get)
        results.append({"prompt": prompt, "no_negative": rates[""], "best_negative": best,
                        "best_rate": rates[best]})
    return results


def captions_of(workdir: Path) -> str:
    """The caption mix the workdir's UNet was trained on (grammar.CAPTION_MIXES; release 3 did not record it)."""
    steps = workdir / "unet_steps.json"
    return json.loads(steps.read_text()).get("captions", "varied") if steps.exists() else "varied"


def training_word_counts(workdir: Path) -> dict[str, int]:
    """How many training captions (of the cached data set) use each wording."""
    import re

    from .data import dataset_path, tokenizer

    cache = workdir / "word_counts.json"
    captions = captions_of(workdir)
    path = dataset_path(workdir, captions)
    if not path.exists() and captions == "varied":  # a workdir from before the mix was recorded
        path = dataset_path(workdir, "sentences")
    if cache.exists():
        return json.loads(cache.read_text())
    if not path.exists():
        return {}
    ids = np.load(path)["ids"]
    rows, counts = np.unique(ids, axis=0, return_counts=True)
    texts = tokenizer().batch_decode(rows, skip_special_tokens=True)
    out = {}
    for concept, words in SYNONYMS.items():
        for w in words:
            pattern = re.compile(rf"(?<!the )\b{re.escape(w)}\b")
            out[w] = int(sum(c * len(pattern.findall(t.strip())) for t, c in zip(texts, counts)))
    cache.write_text(json.dumps(out))
    return out


# ---------------------------------------------------------------- driver

def evaluate(workdir: Path | None = None, per_type: int = 100) -> dict:
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPModel, CLIPProcessor

    t0 = time.time()
    metrics: dict = {}
    metrics["judge_ground_truth"] = judge_ground_truth()
    print("[eval] judge", metrics["judge_ground_truth"], flush=True)
    processor = CLIPProcessor.from_pretrained(SCORER_DIR)
    scorer = CLIPModel.from_pretrained(SCORER_DIR, torch_dtype=torch.float32).eval()
    metrics["scorer_retrieval"] = retrieval(scorer, processor)
    print("[eval] scorer", metrics["scorer_retrieval"], flush=True)
    if workdir is not None and (workdir / "clip" / "config.json").exists():
        cond = CLIPModel.from_pretrained(workdir / "clip").eval()
        metrics["conditioning_clip_retrieval"] = retrieval(cond, processor)
        print("[eval] conditioning clip", metrics["conditioning_clip_retrieval"], flush=True)
    pipe = StableDiffusionPipeline.from_pretrained(PIPELINE_DIR, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    metrics["sampling_time"] = sampling_time(pipe)
    print("[eval] timing", metrics["sampling_time"], flush=True)
    metrics["generation"] = generation_quality(pipe, per_type=per_type)
    print("[eval] generation", json.dumps(metrics["generation"], indent=1), flush=True)
    from .responsiveness import negative_response

    rows = negative_response(pipe, per_type, per_type, progress=lambda name: print(f"[eval] negatives: {name}", flush=True))
    metrics["negatives"] = {"n_single": per_type, "n_two": per_type, "rows": [asdict(r) for r in rows]}
    by_word = metrics["generation"]["by_word"]
    worst = sorted(by_word, key=lambda w: by_word[w]["pass_with_synonym"] - by_word[w]["pass_with_common_word"])[:3]
    metrics["improvement_probe"] = improvement_probe(pipe, worst + ["beneath"] if "beneath" not in worst else worst)
    print("[eval] probe", metrics["improvement_probe"], flush=True)
    metrics["eval_minutes"] = (time.time() - t0) / 60
    training = {}
    if workdir is not None:
        for name in ("stage_minutes.json", "unet_steps.json", "decoder_steps.json", "scorer_more_steps.json",
                     "scorer_steps.json", "clip_steps.json"):
            if (workdir / name).exists():
                training[name.removesuffix(".json")] = json.loads((workdir / name).read_text())
    metrics["training"] = training
    if workdir is not None:
        metrics["training_word_counts"] = training_word_counts(workdir)
    old = WEIGHTS_DIR / "metrics.json"
    if old.exists() and "critic" in json.loads(old.read_text()):  # benchmarks/critic.py's comparison of scorers
        metrics["critic"] = json.loads(old.read_text())["critic"]
    (WEIGHTS_DIR / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    from .card import write_card

    write_card(metrics)
    return metrics
