"""The shapes world's critic: a scorer CLIP that knows more than the generator, as real CLIP does.

DPO-Diff's loss works because CLIP reads words and compositions that Stable Diffusion fails to draw. Here
the scorer is trained to be that critic (``python -m dpodiff.shapes.train --stage critic``):

- every wording the judge reads is drawn at full weight, those the generator never saw included (cobalt,
  disc), and a two-shape scene is worded either way round ("a disc above a box" = "a box below a circle");
- each image's caption competes with near misses of the same scene: one colour, shape, size, background,
  count or relation changed, or attributes swapped between the two objects, which is what the generator
  gets wrong. Copies are always named, so "a red circle" is a miss for an image of two red circles;
- images are roughened the way generated ones are: a round trip through the generator's own VAE (its
  soft edges), blur, noise and small colour shifts.

Only rendered images and their captions are used; never the judge's verdicts on generated images, so the
judge stays independent of what dpodiff optimises.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .grammar import (
    COUNT_WORDS, P_COPIES, SYNONYMS, Scene, ShapeSpec, flipped, near_misses, render_caption, sample_scene,
    sample_shown,
)
from .render import IMAGE_SIZE, background_for, render_array

CRITIC_COPIES = 2 * P_COPIES  # single scenes drawn as copies: the generator's commonest extra mistake
P_FLIPPED = 0.3  # two-shape captions worded the other way round
VAE_SHARE, BLUR_SHARE, NOISE_SHARE = 0.25, 0.3, 0.3
NEGATIVES = 4  # near-miss captions per image
EVAL_SEED = 4242


def full_weight_picker(rng: np.random.Generator):
    """A ``pick`` that draws every wording of a concept equally often (the judge reads them all)."""

    def pick(concept: str) -> str:
        words = list(SYNONYMS[concept])
        return words[rng.integers(len(words))]

    return pick


def critic_scene(rng: np.random.Generator) -> tuple[Scene, Scene]:
    """What an image shows and what its caption names: copies always, flaws half the time."""
    shown = sample_shown(rng, CRITIC_COPIES)
    named = replace(shown, defects=shown.defects if rng.random() < 0.5 else ())
    return shown, named


def misses(scene: Scene, rng: np.random.Generator, n: int) -> list[Scene]:
    """``n`` near misses of ``scene``; for one shape, "two of it" is always among them."""
    out = []
    if scene.kind == "single" and scene.count == 1:
        spec = scene.shapes[0]
        out.append(replace(scene, shapes=(ShapeSpec(spec.shape, spec.colour),), count=int(rng.choice(list(COUNT_WORDS)))))
    out += near_misses(scene, rng, n - len(out))
    while len(out) < n:  # a scene with few ways to differ: repeat one
        out.append(out[-1])
    return out


def same_words(a: Scene, b: Scene) -> bool:
    """Whether the two scenes have the same bag of attribute words (a swap or another relation): what an
    image must show by its layout, since the words alone cannot tell them apart."""
    def bag(scene: Scene) -> list:
        return sorted([*scene.colours(), *(s.shape for s in scene.shapes), *(s.size or "" for s in scene.shapes)])
    return bag(a) == bag(b) and a.count == b.count


def critic_batch(rng: np.random.Generator, n: int, negatives: int = NEGATIVES, miss_images: bool = False,
                 word_blind: bool = False):
    """``n`` rendered images (uint8) with their captions and ``negatives`` near-miss captions each; with
    ``miss_images``, also an image of one near miss per item, on the same background where it can be
    (with ``word_blind``, one with the same words as the caption where there is one)."""
    pick = full_weight_picker(rng)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    wrong_images = np.empty_like(images) if miss_images else None
    captions, wrong = [], []
    for i in range(n):
        shown, named = critic_scene(rng)
        shown = replace(shown, background=background_for(shown, rng))
        images[i] = render_array(shown, rng)
        worded = flipped(named) if rng.random() < P_FLIPPED else named
        captions.append(render_caption(worded, pick))
        found = misses(named, rng, negatives)
        wrong.append([render_caption(flipped(m) if rng.random() < P_FLIPPED else m, pick) for m in found])
        if miss_images:
            blind = [m for m in found if same_words(m, named)] if word_blind else []
            pool = blind or found
            miss = replace(pool[rng.integers(len(pool))], defects=shown.defects)
            if miss.background is None:  # the caption named none: keep the image's, unless a shape now has it
                miss = replace(miss, background=shown.background if shown.background not in miss.colours() else None)
            wrong_images[i] = render_array(miss, rng)
    return images, captions, wrong, wrong_images


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = 2
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


@torch.no_grad()
def roughen(x: torch.Tensor, gen: torch.Generator, vae=None) -> torch.Tensor:
    """Generator-like imperfections on images in [-1, 1]: VAE round trip, blur, noise, colour shifts."""
    n = len(x)
    x = x.clone()
    pick = torch.rand(n, 3, generator=gen)
    if vae is not None:
        idx = (pick[:, 0] < VAE_SHARE).nonzero().flatten()
        if len(idx):
            x[idx] = vae.decode(vae.encode(x[idx]).latent_dist.mean).sample.clamp(-1, 1)
    idx = (pick[:, 1] < BLUR_SHARE).nonzero().flatten()
    if len(idx):
        x[idx] = _blur(x[idx], float(0.4 + 0.6 * torch.rand(1, generator=gen)))
    noise = torch.randn(x.shape, generator=gen) * 0.08 * torch.rand(n, 1, 1, 1, generator=gen)
    x = x + (noise * (pick[:, 2] < NOISE_SHARE).view(n, 1, 1, 1)).to(x.device)  # drawn on the CPU: the same on every device
    gain = 1 + 0.06 * torch.randn(n, 3, 1, 1, generator=gen)
    offset = 0.05 * torch.randn(n, 3, 1, 1, generator=gen)
    return (x * gain.to(x.device) + offset.to(x.device)).clamp(-1, 1)


def held_out_misses(n: int = 300, kind: str = "two", seed: int = EVAL_SEED, negatives: int = 5):
    """Rendered scenes of one kind, each with its caption and ``negatives`` near misses (common words)."""
    rng = np.random.default_rng(seed)
    images, captions, wrong = [], [], []
    while len(images) < n:
        scene = sample_scene(rng, kind)
        found = near_misses(scene, rng, negatives)
        if len(found) < negatives:
            continue
        images.append(render_array(scene, rng))
        captions.append(render_caption(scene))
        wrong.append([render_caption(m) for m in found])
    return np.stack(images), captions, wrong


@torch.no_grad()
def miss_retrieval(model, tok, images: np.ndarray, captions: list[str], wrong: list[list[str]]) -> float:
    """Share of images whose caption beats all of its near misses."""
    from .clip import image_features, text_features
    from .data import images_to_tensor, tokenize, trim

    model.eval()
    img = image_features(model, images_to_tensor(images).to(model.device))
    k = len(wrong[0]) + 1
    texts = [t for c, w in zip(captions, wrong) for t in [c, *w]]
    txt = text_features(model, trim(tokenize(tok, texts)).to(model.device)).view(len(captions), k, -1)
    sims = (txt @ img[:, :, None]).squeeze(-1)
    model.train()
    return float((sims.argmax(1) == 0).float().mean())


def contrastive_loss(scale: torch.Tensor, img: torch.Tensor, txt: torch.Tensor, spec) -> torch.Tensor:
    """CLIP's two-way loss over a batch of `spec.batch` images and captions, with hard negatives: each image also
    against its own near-miss captions (the rows of `txt` after the batch's), and, with `spec.miss_images`, each
    caption also against an image of one of its near misses (the rows of `img` after the batch's): what the loss
    must rank when it scores the generator's images against a fixed prompt."""
    img, miss_img = img[: spec.batch], img[spec.batch:]
    logits = scale * img @ txt[: spec.batch].T
    own = scale * (img[:, None, :] * txt[spec.batch:].view(spec.batch, spec.hard_negatives, -1)).sum(-1)
    per_text = logits.T
    if spec.miss_images:
        per_text = torch.cat([per_text, scale * (txt[: spec.batch] * miss_img).sum(-1, keepdim=True)], 1)
    target = torch.arange(spec.batch, device=img.device)
    return (F.cross_entropy(torch.cat([logits, own], 1), target) + F.cross_entropy(per_text, target)) / 2


def train_critic(spec, out: Path, init_from: Path, vae_dir: Path, max_minutes: float | None = None, run=None) -> None:
    """Contrastive training from a released scorer; held-out near-miss retrieval logged every 250 steps."""
    from diffusers import AutoencoderKL

    from .clip import image_features, load_grown, make_clip, text_features
    from .data import images_to_tensor, tokenize, tokenizer, trim
    from .loop import Training, finished, lr_at, write_steps

    run = run or Training()
    if finished(out, out.name):
        return
    model = make_clip(spec)
    released_patch = json.loads((init_from / "config.json").read_text())["vision_config"]["patch_size"]
    # a vision tower with another patch size starts afresh; the text tower keeps what it learnt
    load_grown(model, init_from, only=None if released_patch == spec.patch else ("text_model.", "text_projection", "logit_scale"))
    model.to(run.device)
    vae = AutoencoderKL.from_pretrained(vae_dir, torch_dtype=torch.float32).eval().requires_grad_(False).to(run.device)
    tok = tokenizer()
    cache: dict[str, torch.Tensor] = {}

    def ids(texts: list[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            cache.update(zip(missing, tokenize(tok, missing)))
        return trim(torch.stack([cache[t] for t in texts])).to(run.device)

    held = {kind: held_out_misses(200, kind) for kind in ("two", "relation")}
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    state = run.state(out, {"model": model}, opt, np.random.default_rng(2000 + spec.seed), torch.Generator().manual_seed(2000 + spec.seed))
    log = state.extra.setdefault("log", [])
    model.train()
    for step in state.steps(spec.steps, out.name, max_minutes):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, spec.steps, spec.lr)
        arr, captions, wrong, wrong_arr = critic_batch(state.rng, spec.batch, spec.hard_negatives, spec.miss_images,
                                                       spec.word_blind_misses)
        if spec.miss_images:
            arr = np.concatenate([arr, wrong_arr])
        img = image_features(model, roughen(images_to_tensor(arr).to(run.device), state.generator, vae))
        txt = text_features(model, ids(captions + [w for ws in wrong for w in ws]))
        loss = contrastive_loss(model.logit_scale.exp().clamp(max=100), img, txt, spec)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 250 == 0 or step == spec.steps - 1:
            scores = {kind: miss_retrieval(model, tok, *held[kind]) for kind in held}
            log.append({"step": step, "loss": round(loss.item(), 4), "minutes": round(state.minutes, 1),
                        **{f"misses_{k}": round(v, 3) for k, v in scores.items()}})
            tqdm.write(f"[{out.name}] {log[-1]}")
    model.to("cpu").save_pretrained(out)
    write_steps(out, out.name, state, spec.steps, batch=spec.batch, negatives=spec.hard_negatives, miss_images=spec.miss_images, log=log)
