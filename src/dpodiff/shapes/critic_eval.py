"""How good a critic a shapes-world scorer is: the three measurements behind ``benchmarks/critic.py``.

- near misses by kind of change: on held-out rendered images, how often the true caption beats the same
  caption with one thing changed (a colour, a shape, a size, the background, the count, the relation, or
  attributes swapped between the two objects);
- ranking of generated images: within each prompt, how often an image the judge passes has a lower loss
  than one it fails (an AUC over all such pairs), on the generator's own images of held-out prompts;
- synonyms: whether each wording the grammar knows is read as its meaning, by the text embedding (nearest
  caption of each meaning) and by images (lowest loss on images of each meaning).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .grammar import (
    CHANGES, COLOURS, RELATIONS, SHAPES, SIZES, SYNONYMS, Scene, ShapeSpec, changed, changes, meaning, normalise,
    parse, render_caption, sample_scene,
)
from .judge import judge
from .render import render_array

SEED = 5151
CATEGORIES = {"colour": COLOURS, "shape": SHAPES, "size": SIZES, "relation": RELATIONS}


def _pixels(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255


KIND_FOR = {"relation": ("relation",), "swap_colour": ("two", "relation"), "swap_shape": ("two", "relation"),
            "size": ("single",)}


def _scene_for(op: str, rng: np.random.Generator) -> Scene:
    """A held-out scene on which change ``op`` is possible."""
    if op == "count":
        spec = sample_scene(rng, "single").shapes[0]
        return Scene((ShapeSpec(spec.shape, spec.colour),), count=int(rng.integers(1, 4)))
    while True:
        kinds = KIND_FOR.get(op, ("single", "two", "relation"))
        scene = sample_scene(rng, kinds[rng.integers(len(kinds))])
        if op == "size":
            scene = replace(scene, shapes=(replace(scene.shapes[0], size=SIZES[rng.integers(2)]),))
        if op in changes(scene):
            return scene


@torch.no_grad()
def misses_by_change(scorer, n: int = 300, seed: int = SEED) -> dict[str, float]:
    """Per kind of change: the share of held-out images whose caption scores better than the changed one."""
    rng = np.random.default_rng(seed)
    out = {}
    for op in CHANGES:
        images, true, wrong = [], [], []
        while len(images) < n:
            scene = _scene_for(op, rng)
            other = changed(scene, op, rng)
            if other is None or meaning(render_caption(other)) == meaning(render_caption(scene)):
                continue
            images.append(render_array(scene, rng))
            true.append(render_caption(scene))
            wrong.append(render_caption(other))
        pixels = _pixels(np.stack(images))
        right = scorer.loss(pixels, scorer.embed_text(true)) < scorer.loss(pixels, scorer.embed_text(wrong))
        out[op] = float(right.float().mean())
    return out


# ---------------------------------------------------------------- generated images, judged


@dataclass
class Generated:
    """The generator's images of some prompts (``seeds`` each) with the judge's verdicts."""

    prompts: list[str]
    seeds: list[int]
    images: np.ndarray  # (len(prompts) * len(seeds), 32, 32, 3) uint8, prompt-major
    passed: np.ndarray  # bool, same order

    def of(self, i: int) -> slice:
        return slice(i * len(self.seeds), (i + 1) * len(self.seeds))


def generate_judged(pipeline_dir: Path, prompts: list[str], seeds: list[int], steps: int, guidance: float,
                    cache: Path | None = None) -> Generated:
    """Generate and judge, or load what an earlier call with the same generator and settings saved."""
    weights = sorted(Path(pipeline_dir).rglob("*.safetensors"))
    key = hashlib.sha256(repr((prompts, seeds, steps, guidance, [p.stat().st_size for p in weights],
                               [p.read_bytes()[-4096:] for p in weights])).encode()).hexdigest()[:16]
    path = cache / f"generated-{key}.npz" if cache else None
    if path is not None and path.exists():
        z = np.load(path)
        return Generated(prompts, seeds, z["images"], z["passed"])
    from diffusers import StableDiffusionPipeline
    from tqdm.auto import tqdm

    pipe = StableDiffusionPipeline.from_pretrained(pipeline_dir, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    images, passed = [], []
    for prompt in tqdm(prompts, desc="generating", unit="prompt"):
        out = pipe([prompt] * len(seeds), num_inference_steps=steps, guidance_scale=guidance, output_type="pil",
                   generator=[torch.Generator().manual_seed(s) for s in seeds]).images
        images += [np.asarray(im, dtype=np.uint8) for im in out]
        passed += [judge(prompt, im).passed for im in out]
    result = Generated(prompts, seeds, np.stack(images), np.array(passed))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, images=result.images, passed=result.passed)
    return result


def prompt_groups(prompt: str) -> list[str]:
    """The kinds of difficulty a prompt has: relation, two (and), rare word, background, size, single."""
    scene = parse(prompt)
    groups = [{"single": "single", "two": "two (and)", "relation": "relation"}[scene.kind]]
    if render_caption(scene) != normalise(prompt):  # some wording is not the common word
        groups.append("rare word")
    if scene.background:
        groups.append("background")
    if any(s.size for s in scene.shapes):
        groups.append("size")
    return groups


@dataclass
class Auc:
    auc: float  # share of (pass, fail) pairs within a prompt where the passing image has the lower loss
    pairs: int
    prompts: int  # prompts with at least one pair


@torch.no_grad()
def within_prompt_auc(scorer, generated: Generated) -> dict[str, Auc]:
    """AUC of -loss for the judge's pass, pooled over pairs within each prompt, per prompt group and overall."""
    wins: dict[str, list[float]] = {}
    counted: dict[str, int] = {}
    for i, prompt in enumerate(generated.prompts):
        part = generated.of(i)
        losses = scorer.loss(_pixels(generated.images[part]), scorer.target(prompt)).cpu().numpy()
        ok = generated.passed[part]
        good, bad = losses[ok], losses[~ok]
        if not len(good) or not len(bad):
            continue
        pair = (good[:, None] < bad[None, :]) + 0.5 * (good[:, None] == bad[None, :])
        for group in ["all"] + prompt_groups(prompt):
            wins.setdefault(group, []).extend(pair.flatten().tolist())
            counted[group] = counted.get(group, 0) + 1
    return {g: Auc(float(np.mean(w)), len(w), counted[g]) for g, w in wins.items()}


# ---------------------------------------------------------------- synonyms


def _category(concept: str) -> str:
    return next(name for name, members in CATEGORIES.items() if concept in members)


def _with(scene: Scene, concept: str) -> Scene:
    """``scene`` with its slot of ``concept``'s category (first object) set to ``concept``."""
    first = scene.shapes[0]
    slot = _category(concept)
    if slot == "relation":
        return replace(scene, relation=concept)
    spec = replace(first, **{"colour" if slot == "colour" else slot: concept})
    return replace(scene, shapes=(spec, *scene.shapes[1:]))


def _templates(concept: str, rng: np.random.Generator, n: int) -> list[Scene]:
    """Scenes without a background word, in which every meaning of ``concept``'s category can be drawn."""
    kind = "relation" if _category(concept) == "relation" else "single"
    return [replace(sample_scene(rng, kind), background=None) for _ in range(n)]


@dataclass
class Reading:
    concept: str
    by_text: str  # the meaning whose caption lies nearest this wording's caption
    by_images: str  # the meaning whose images score best against this wording's caption
    image_margin: float  # mean loss of the nearest wrong meaning's images minus the right one's


@torch.no_grad()
def synonym_readings(scorer, templates: int = 6, images_per: int = 2, seed: int = SEED) -> dict[str, Reading]:
    """For every wording of every concept, what the scorer reads it as."""
    rng = np.random.default_rng(seed)
    out = {}
    for concept, words in SYNONYMS.items():
        rivals = CATEGORIES[_category(concept)]
        scenes = _templates(concept, rng, templates)
        common = {r: scorer.embed_text([render_caption(_with(s, r)) for s in scenes]) for r in rivals}
        pixels = {r: _pixels(np.stack([render_array(_with(s, r), rng) for s in scenes for _ in range(images_per)]))
                  for r in rivals}
        for word in words:
            worded = [render_caption(_with(s, concept), lambda c: word if c == concept else next(iter(SYNONYMS[c])))
                      for s in scenes]
            text = scorer.embed_text(worded)
            sims = {r: float(torch.nn.functional.cosine_similarity(text, common[r]).mean()) for r in rivals}
            targets = text.repeat_interleave(images_per, 0)
            losses = {r: float(scorer.loss(pixels[r], targets).mean()) for r in rivals}
            wrong = min(v for r, v in losses.items() if r != concept)
            out[word] = Reading(concept, max(sims, key=sims.get), min(losses, key=losses.get), wrong - losses[concept])
    return out


# ---------------------------------------------------------------- tables


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def critic_tables(results: dict[str, dict]) -> str:
    """Markdown tables of benchmarks/critic.py's numbers, one column per scorer (also the model card's)."""
    names = list(results)
    head = "| " + " | ".join(names) + " |"
    rule = "|---" * (len(names) + 1) + "|"
    first = next(iter(results.values()))
    lines = ["Near misses: the true caption beats the changed one (held-out rendered images, 300 per kind)", "",
             "| change" + head, rule]
    for op in first["misses_by_change"]:
        lines.append(f"| {op} | " + " | ".join(_pct(r["misses_by_change"][op]) for r in results.values()) + " |")
    for kind in ("two", "relation"):
        key = f"near_miss6_{kind}"
        lines.append(f"| right among itself + 5 near misses, {kind} | "
                     + " | ".join(_pct(r["retrieval"][key]) for r in results.values()) + " |")
    lines += ["", "Within-prompt AUC of -loss for the judge's pass (generated images; pass/fail pairs, prompts)", "",
              "| prompts" + head, rule]
    for group in first["auc"]:
        cells = [f"{r['auc'][group]['auc']:.3f} ({r['auc'][group]['pairs']}, {r['auc'][group]['prompts']})"
                 if group in r["auc"] else "-" for r in results.values()]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    lines += ["", "Wordings read as (by text / by images; image margin = loss of the nearest wrong meaning's "
              "images minus the right one's)", "", "| word | means" + head, "|---" * (len(names) + 2) + "|"]
    for word, reading in first["synonyms"].items():
        cells = []
        for r in results.values():
            x = r["synonyms"][word]
            text = "ok" if x["by_text"] == x["concept"] else x["by_text"]
            image = "ok" if x["by_images"] == x["concept"] else x["by_images"]
            cells.append(f"{text} / {image} ({x['image_margin']:+.2f})")
        lines.append(f"| {word} | {reading['concept']} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, r in results.items():
        right = sum(x["by_text"] == x["concept"] and x["by_images"] == x["concept"] for x in r["synonyms"].values())
        lines.append(f"{name}: {right} of {len(r['synonyms'])} wordings read as their meaning by text and by images")
    return "\n".join(lines)
