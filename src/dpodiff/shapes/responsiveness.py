"""Does a negative prompt push away what it names? Flaw rates and judge pass rates, with and without it.

Stable Diffusion answers the negative prompt "blurry" because web captions say "blurry", alone and after a
scene, so the text has a meaning the model draws, and classifier-free guidance steers away from it. This
measures the same for the shapes world: the same prompts and seeds are drawn with no negative prompt and
with one, and each image is checked for the flaws the world knows.

Flaws are read off simple image statistics of the RGB image (values 0-255), each blind to what the scene
shows (every palette colour but white has a channel below 60, and every colour but black one above 140):
- blurry: sharpness, the summed absolute 4-neighbour Laplacian over the summed gradient magnitude of the grey
  image, below a threshold: blurring an edge by sigma divides the first by about sigma**2, the second by sigma;
- noisy: noise, the median over pixels of the absolute difference from the 3x3 median-filtered grey image,
  above one;
- dark: brightness, the 98th percentile over pixels of the brightest channel, below one;
- faded: floor, the 2nd percentile over pixels of the darkest channel, above one (a washed-out image has no
  deep channel left), in an image that is not dark;
- cropped: frame occupancy, the share of the outermost pixel ring farther than 40 (RGB distance) from the
  ring's median colour, above one: an object cut by the frame covers part of the ring;
- copies: the judge finds more objects than the prompt names.
Each threshold is the one that best tells clean from flawed renders of the same scenes (balanced accuracy),
both taken through the generator's VAE (what the generator can draw): `calibrate`. That accuracy says how
well the flaw can be read at all; below MIN_ACCURACY the VAE
does not reproduce the flaw (a blurred image comes back sharp), the generator cannot draw it, and its rate
is not reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from .grammar import COLOURS, DEFECTS, Scene, ShapeSpec, parse, render_caption, sample_scene
from .judge import check_scene
from .render import render

SEED = 4242
MIN_ACCURACY = 0.8
COPIES_NEGATIVE = "two, three"
RING_DISTANCE = 40.0


def _grey(arr: np.ndarray) -> np.ndarray:
    return arr.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def sharpness(arr: np.ndarray) -> float:
    g = _grey(arr)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    gy, gx = np.gradient(g)
    return float(np.abs(lap).sum() / max(float(np.hypot(gx, gy)[1:-1, 1:-1].sum()), 1e-6))


def noise(arr: np.ndarray) -> float:
    g = _grey(arr)
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(g, 1, mode="edge"), (3, 3))
    return float(np.median(np.abs(g - np.median(windows, axis=(-2, -1)))))


def brightness(arr: np.ndarray) -> float:
    return float(np.percentile(arr.max(axis=-1), 98))


def floor(arr: np.ndarray) -> float:
    return float(np.percentile(arr.min(axis=-1), 2))


def frame_occupancy(arr: np.ndarray) -> float:
    a = arr.astype(np.float32)
    ring = np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])
    return float((np.linalg.norm(ring - np.median(ring, axis=0), axis=1) > RING_DISTANCE).mean())


STATISTICS = {"blurry": sharpness, "noisy": noise, "dark": brightness, "faded": floor, "cropped": frame_occupancy}
LOW_MEANS_FLAW = {"blurry": True, "noisy": False, "dark": True, "faded": False, "cropped": False}


@dataclass
class Thresholds:
    """Per flaw, the statistic's value that separates clean from flawed images, and how well it does."""

    values: dict[str, float]
    accuracy: dict[str, float] = field(default_factory=dict)  # balanced, on the calibration renders

    def readable(self, flaw: str) -> bool:
        return self.accuracy.get(flaw, 1.0) >= MIN_ACCURACY

    def shows(self, flaw: str, arr: np.ndarray) -> bool:
        x = STATISTICS[flaw](arr)
        return (x < self.values[flaw]) if LOW_MEANS_FLAW[flaw] else (x > self.values[flaw])

    def flaws(self, arr: np.ndarray) -> set[str]:
        """The flaws (of DEFECTS, those that can be read) an image shows."""
        found = {flaw for flaw in STATISTICS if self.readable(flaw) and self.shows(flaw, arr)}
        if "dark" in found:
            found.discard("faded")
        return found


def _through(vae, images: list[Image.Image]) -> list[np.ndarray]:
    """Images as the generator's VAE reproduces them (None: as they are)."""
    arrs = [np.asarray(im.convert("RGB")) for im in images]
    if vae is None:
        return arrs
    x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        y = vae.decode(vae.encode(x.to(vae.dtype)).latent_dist.mean).sample
    return list(((y.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())


def calibrate(vae=None, n: int = 200, seed: int = SEED) -> Thresholds:
    """Thresholds from n clean renders and the same scenes with each flaw (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng) for _ in range(n)]
    states = [int(rng.integers(2**31)) for _ in scenes]
    clean = _through(vae, [render(s, np.random.default_rng(k)) for s, k in zip(scenes, states)])
    found = Thresholds({})
    for flaw, stat in STATISTICS.items():
        flawed = _through(vae, [render(replace(s, defects=(flaw,)), np.random.default_rng(k)) for s, k in zip(scenes, states)])
        found.values[flaw], found.accuracy[flaw] = _best_threshold(
            np.array([stat(x) for x in clean]), np.array([stat(x) for x in flawed]), LOW_MEANS_FLAW[flaw])
    return found


def _best_threshold(clean: np.ndarray, flawed: np.ndarray, low_means_flaw: bool) -> tuple[float, float]:
    """The cut between sorted values with the best balanced accuracy, and that accuracy."""
    if low_means_flaw:
        clean, flawed = -clean, -flawed
    values = np.unique(np.concatenate([clean, flawed]))
    cuts = np.concatenate([(values[:-1] + values[1:]) / 2, [values[-1] + 1.0]])
    accuracy = ((clean[None] <= cuts[:, None]).mean(1) + (flawed[None] > cuts[:, None]).mean(1)) / 2
    best = int(accuracy.argmax())
    return float(-cuts[best] if low_means_flaw else cuts[best]), float(accuracy[best])


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95% interval of a rate k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - half) / (1 + z * z / n)), min(1.0, (centre + half) / (1 + z * z / n))


@dataclass
class Row:
    """One negative prompt against none, on the same prompts and seeds."""

    name: str  # what the negative names: a flaw, "copies", "every flaw", "another colour", "swapped scene"
    negative: str  # the negative prompt (or how it is chosen per prompt)
    n: int
    flaw: str | None = None  # the flaw whose rate it should lower ("copies" for unasked copies)
    flaw_without: int = 0  # images showing the flaw without the negative, and with it
    flaw_with: int = 0
    went_away: int = 0  # paired: images whose flaw the negative removed, and images it gave one
    appeared: int = 0
    pass_without: int = 0
    pass_with: int = 0
    per_flaw_with: dict[str, int] = field(default_factory=dict)  # "every flaw": each flaw's count with it
    statistic: tuple[float, float] | None = None  # an image flaw's statistic, mean over images without and with
    readable: float | None = None  # an image flaw's calibration accuracy (below MIN_ACCURACY: not drawable)



def _pct(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k / n:.1%} [{lo:.0%}, {hi:.0%}]"


def table(rows: list[Row]) -> list[str]:
    """The rows as a markdown table: the flaw's rate and the judge's pass rate without and with the negative
    prompt (Wilson 95% intervals), and, paired on the same seeds, images the negative rid of the flaw or gave it.
    A flaw the generator's VAE cannot draw (calibration accuracy below MIN_ACCURACY) gets no rate."""
    lines = ["| negative prompt | flaw read (calibration) | flaw rate: none | with it | change | flaw gone / new "
             "| its statistic: none → with it | pass rate: none | with it |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        read = f"{r.readable:.0%}" if r.readable is not None else "-"
        if r.readable is not None and r.readable < MIN_ACCURACY:
            flaw = [read, "not drawable", "-", "-", "-"]
        elif r.flaw or r.per_flaw_with:
            change = f"{(r.flaw_with - r.flaw_without) / max(r.flaw_without, 1):+.0%}"
            flaw = [read, _pct(r.flaw_without, r.n), _pct(r.flaw_with, r.n), change,
                    f"{r.went_away} / {r.appeared}" if r.flaw else "-"]
        else:
            flaw = ["-"] * 5
        flaw.append(f"{r.statistic[0]:.2f} → {r.statistic[1]:.2f}" if r.statistic else "-")
        label = f"\"{r.negative}\"" if r.flaw or r.per_flaw_with else r.negative
        lines.append(f"| {label} ({r.name}) | " + " | ".join(flaw + [_pct(r.pass_without, r.n), _pct(r.pass_with, r.n)]) + " |")
    return lines


def _scene(prompt: str) -> Scene:
    scene = parse(prompt)
    assert scene is not None, prompt
    return scene


def prompt_sets(n_single: int, n_two: int, seed: int = SEED) -> tuple[list[str], list[str]]:
    """Held-out prompts in common words: single shapes and two shapes joined by "and" (no flaw named)."""
    rng = np.random.default_rng(seed + 1)
    return ([render_caption(sample_scene(rng, "single")) for _ in range(n_single)],
            [render_caption(sample_scene(rng, "two")) for _ in range(n_two)])


def other_colour(scene: Scene, rng: np.random.Generator) -> str:
    """A basic colour the prompt does not name: the "green" of "a yellow circle"'s negative prompt."""
    used = set(scene.colours())
    return str(rng.choice([c for c in COLOURS if c not in used]))


def swapped(scene: Scene) -> str:
    """The two-shape scene with the colours swapped between its objects, as a caption."""
    a, b = scene.shapes
    return render_caption(replace(scene, shapes=(ShapeSpec(a.shape, b.colour, a.size), ShapeSpec(b.shape, a.colour, b.size))))


def negative_response(pipe, n_single: int = 100, n_two: int = 100, thresholds: Thresholds | None = None,
                      generate=None, progress=None) -> list[Row]:
    """Every row of the responsiveness table (see the module's docstring) on n_single + n_two prompts, seed i
    for prompt i. ``generate(prompts, seeds, negative)`` draws the images (default: sampling.generate at the
    recommended settings); ``progress(name)`` is told each row's name as it starts."""
    from .sampling import QUALITY_NEGATIVE, generate as default_generate

    draw = generate or (lambda prompts, seeds, negative: default_generate(pipe, prompts, seeds, negative=negative))
    thresholds = thresholds or calibrate(pipe.vae)
    singles, twos = prompt_sets(n_single, n_two)
    prompts = singles + twos
    seeds = list(range(len(prompts)))

    def read(images, texts=prompts):
        """Each image as an array, its flaws (unasked copies included) and the judge's verdict."""
        arrays, flaws, passed = [], [], []
        for text, image in zip(texts, images):
            scene = _scene(text)
            verdict = check_scene(scene, image)
            copies = len(verdict.detected) > len(scene.shapes) * scene.count
            arrays.append(np.asarray(image.convert("RGB")))
            flaws.append(thresholds.flaws(arrays[-1]) | ({"copies"} if copies else set()))
            passed.append(verdict.passed)
        return arrays, flaws, passed

    tell = progress or (lambda name: None)
    tell("no negative prompt")
    base_arrays, base_flaws, base_pass = read(draw(prompts, seeds, None))
    rows = []
    for name, negative, flaw in [(d, d, d) for d in DEFECTS] + [("copies", COPIES_NEGATIVE, "copies"),
                                                                ("every flaw", QUALITY_NEGATIVE, None)]:
        tell(name)
        arrays, flaws, passed = read(draw(prompts, seeds, negative))
        row = Row(name, negative, len(prompts), flaw, pass_without=sum(base_pass), pass_with=sum(passed))
        if flaw:
            row.flaw_without = sum(flaw in f for f in base_flaws)
            row.flaw_with = sum(flaw in f for f in flaws)
            row.went_away = sum(flaw in a and flaw not in b for a, b in zip(base_flaws, flaws))
            row.appeared = sum(flaw not in a and flaw in b for a, b in zip(base_flaws, flaws))
            if flaw in STATISTICS:
                row.readable = float(thresholds.accuracy.get(flaw, 1.0))
                row.statistic = (float(np.mean([STATISTICS[flaw](a) for a in base_arrays])),
                                 float(np.mean([STATISTICS[flaw](a) for a in arrays])))
        else:
            row.per_flaw_with = {d: sum(d in f for f in flaws) for d in DEFECTS + ("copies",)}
            row.flaw_without = sum(bool(f) for f in base_flaws)
            row.flaw_with = sum(bool(f) for f in flaws)
        rows.append(row)
    rng = np.random.default_rng(SEED + 2)
    tell("another colour")
    negatives = [other_colour(_scene(p), rng) for p in singles]
    *_, passed = read(draw(singles, seeds[:n_single], negatives), singles)
    rows.append(Row("another colour", "a basic colour the prompt does not name", n_single,
                    pass_without=sum(base_pass[:n_single]), pass_with=sum(passed)))
    tell("swapped scene")
    negatives = [swapped(_scene(p)) for p in twos]
    *_, passed = read(draw(twos, seeds[n_single:], negatives), twos)
    rows.append(Row("swapped scene", "the two-shape scene with its colours swapped", n_two,
                    pass_without=sum(base_pass[n_single:]), pass_with=sum(passed)))
    return rows


@dataclass
class AskedRow:
    """A flaw asked for in the prompt ("a red circle, faded"; copies: "two red circles"): does the generator draw
    it, and does the same word as the negative prompt take it away again? Single shapes, the same seeds."""

    flaw: str
    n: int
    plain: int  # images showing the flaw: the prompt alone
    asked: int  # the flaw named in the prompt
    asked_negated: int  # named in the prompt and in the negative prompt


def asked_prompt(scene: Scene, flaw: str) -> str:
    return render_caption(replace(scene, count=2) if flaw == "copies" else replace(scene, defects=(flaw,)))


def asked_response(pipe, n_single: int = 100, thresholds: Thresholds | None = None, generate=None, progress=None) -> list[AskedRow]:
    """Per drawable flaw and for copies, its rate on the prompt alone, asked for, and asked for and negated
    (the negative prompt is the flaw's word, "two, three" for copies). A flaw that asking does not raise is not
    a mode the model ties to its word, and no negative prompt can push it away."""
    from .sampling import generate as default_generate

    draw = generate or (lambda prompts, seeds, negative: default_generate(pipe, prompts, seeds, negative=negative))
    thresholds = thresholds or calibrate(pipe.vae)
    singles, _ = prompt_sets(n_single, 0)
    scenes = [_scene(p) for p in singles]
    seeds = list(range(n_single))
    tell = progress or (lambda name: None)

    def rate(flaw: str, images) -> int:
        if flaw == "copies":
            return sum(len(check_scene(scene, image).detected) > 1 for scene, image in zip(scenes, images))
        return sum(thresholds.shows(flaw, np.asarray(image.convert("RGB"))) for image in images)

    plain = draw(singles, seeds, None)  # the prompt alone: the same images for every flaw
    rows = []
    for flaw in [d for d in DEFECTS if thresholds.readable(d)] + ["copies"]:
        tell(flaw)
        asked = [asked_prompt(s, flaw) for s in scenes]
        negative = COPIES_NEGATIVE if flaw == "copies" else flaw
        rows.append(AskedRow(flaw, n_single, rate(flaw, plain), rate(flaw, draw(asked, seeds, None)), rate(flaw, draw(asked, seeds, negative))))
    return rows


def asked_table(rows: list[AskedRow]) -> list[str]:
    lines = ["| flaw | rate: prompt alone | asked for in the prompt | asked for, and named in the negative prompt |",
             "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.flaw} | {_pct(r.plain, r.n)} | {_pct(r.asked, r.n)} | {_pct(r.asked_negated, r.n)} |")
    return lines
