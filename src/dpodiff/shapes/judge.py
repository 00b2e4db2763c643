"""A programmatic judge: does an image show what its caption says?

Independent of every learned model, so it gives honest numbers for prompt
optimisation (whose loss is CLIP-based). The image is modelled as shapes
alpha-blended over a plain background: each pixel is explained as a mix of
the background colour and one palette colour, which keeps anti-aliased and
blurry (generated) edges from turning into spurious objects of an
in-between colour. Shapes are classified by matching a circle, square and
triangle drawn in the object's bounding box.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from itertools import permutations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from .grammar import COLOURS, PALETTE, SHAPES, Scene, parse
from .render import IMAGE_SIZE, SUPERSAMPLE, draw_shape

MIN_AREA = 12  # pixels; smaller blobs are noise (the smallest drawn shape covers ~24)
MAX_RESIDUAL = 60.0  # RGB distance from the background-to-colour line
SMALL_MAX, LARGE_MIN = 11, 16  # side lengths; render draws small 7-10, large 18-23
_RGB = np.array([PALETTE[c] for c in COLOURS], dtype=np.float32)


@dataclass
class Detected:
    """One object found in the image."""

    colour: str
    shape: str
    side: int
    centre: tuple[float, float]
    area: int
    shape_scores: dict[str, float] = field(default_factory=dict)


@dataclass
class Verdict:
    """Per-attribute checks; ``passed`` only if all hold."""

    passed: bool
    checks: dict[str, bool]
    background: str
    detected: list[Detected]

    def to_dict(self) -> dict:
        return {
            "pass": self.passed,
            "checks": dict(self.checks),
            "background": self.background,
            "detected": [asdict(d) for d in self.detected],
        }


def _as_array(image: Image.Image) -> np.ndarray:
    image = image.convert("RGB")
    if image.size != (IMAGE_SIZE, IMAGE_SIZE):
        image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX)
    return np.asarray(image, dtype=np.float32)


def _background(arr: np.ndarray) -> int:
    border = np.concatenate([arr[:2].reshape(-1, 3), arr[-2:].reshape(-1, 3),
                             arr[:, :2].reshape(-1, 3), arr[:, -2:].reshape(-1, 3)])
    nearest = ((border[:, None, :] - _RGB[None]) ** 2).sum(-1).argmin(1)
    return int(np.bincount(nearest, minlength=len(COLOURS)).argmax())


def _colour_labels(arr: np.ndarray, bg: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: the palette colour it mostly shows over the background (or -1), and its alpha."""
    b = _RGB[bg]
    d = _RGB - b  # (C, 3)
    p = arr.reshape(-1, 3) - b  # (N, 3)
    norm2 = np.maximum((d ** 2).sum(-1), 1e-6)
    alpha = (p @ d.T) / norm2  # (N, C)
    resid = np.linalg.norm(p[:, None, :] - alpha[..., None] * d[None], axis=-1)
    fit = resid <= MAX_RESIDUAL
    ok = (alpha >= 0.5) & (alpha <= 1.6) & fit
    ok[:, bg] = False
    resid = np.where(ok, resid, np.inf)
    labels = resid.argmin(1)
    labels[~ok.any(1)] = -1
    # Soft coverage of each colour: its alpha where it explains the pixel well.
    soft = np.where(fit, np.clip(alpha, 0.0, 1.0), 0.0)
    return labels.reshape(arr.shape[:2]), soft.reshape(*arr.shape[:2], -1)


BLURS = (0.0, 0.7, 1.2)  # Gaussian sigmas (pixels) tried for blurry generated images
PAD = 3


@lru_cache(maxsize=8192)
def _template(shape: str, w: int, h: int, sigma: float) -> np.ndarray:
    """Soft coverage of ``shape`` drawn in a w x h box, padded by PAD, blurred by sigma."""
    s = SUPERSAMPLE
    img = Image.new("L", ((w + 2 * PAD) * s, (h + 2 * PAD) * s), 0)
    draw_shape(ImageDraw.Draw(img), shape, (PAD * s, PAD * s, (PAD + w) * s, (PAD + h) * s), 255)
    t = np.asarray(img.reduce(s), dtype=np.float32) / 255
    return ndimage.gaussian_filter(t, sigma) if sigma else t


def _classify(alpha: np.ndarray, box: tuple[int, int, int, int]) -> dict[str, float]:
    """Fit score (1 - mean squared error) of each shape to the object's soft mask.

    The object's extent and blur are nuisance parameters: templates are tried
    with the bounding box as found and grown by one pixel on each side, sharp
    and blurred, and the best fit per shape counts.
    """
    y0, y1, x0, x1 = box
    padded = np.pad(alpha, PAD + 1)
    scores = {}
    for shape in SHAPES:
        best = np.inf
        for grow in (0, 1):
            h, w = y1 - y0 + 2 * grow, x1 - x0 + 2 * grow
            top, left = y0 - grow + 1, x0 - grow + 1  # +1: the extra padding
            window = padded[top: top + h + 2 * PAD, left: left + w + 2 * PAD]
            for sigma in BLURS:
                err = float(((window - _template(shape, w, h, sigma)) ** 2).mean())
                best = min(best, err)
        scores[shape] = 1.0 - best
    return scores


def detect(image: Image.Image) -> tuple[str, list[Detected]]:
    """Background colour and the objects in an image (largest first)."""
    arr = _as_array(image)
    bg = _background(arr)
    labels, soft = _colour_labels(arr, bg)
    found = []
    for c in range(len(COLOURS)):
        if c == bg:
            continue
        comps, n = ndimage.label(labels == c)
        for k in range(1, n + 1):
            mask = comps == k
            area = int(mask.sum())
            if area < MIN_AREA:
                continue
            ys, xs = np.nonzero(mask)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            # Soft mask of this object only: its colour's alpha, near its pixels.
            near = ndimage.binary_dilation(mask, iterations=2) & ((labels == c) | (labels == -1))
            scores = _classify(np.where(near, soft[..., c], 0.0), (y0, y1, x0, x1))
            found.append(Detected(
                colour=COLOURS[c], shape=max(scores, key=scores.get),
                side=int(max(x1 - x0, y1 - y0)), centre=(float(x0 + x1) / 2, float(y0 + y1) / 2),
                area=area, shape_scores={k2: round(v, 3) for k2, v in scores.items()}))
    found.sort(key=lambda d: -d.area)
    return COLOURS[bg], found


def _size_ok(size: str | None, side: int) -> bool:
    if size == "small":
        return side <= SMALL_MAX
    if size == "large":
        return side >= LARGE_MIN
    return True


def _relation_ok(relation: str, a: Detected, b: Detected) -> bool:
    dx, dy = b.centre[0] - a.centre[0], b.centre[1] - a.centre[1]
    if relation in ("above", "below"):
        return (dy > 0 if relation == "above" else dy < 0) and abs(dy) >= abs(dx)
    return (dx > 0 if relation == "left of" else dx < 0) and abs(dx) >= abs(dy)


def _checks(scene: Scene, bg: str, objects: list[Detected | None]) -> dict[str, bool]:
    specs = scene.shapes * scene.count
    checks = {"count": sum(o is not None for o in objects) == len(specs)}
    for i, (spec, obj) in enumerate(zip(specs, objects), start=1):
        checks[f"shape_{i}"] = obj is not None and obj.shape == spec.shape
        checks[f"colour_{i}"] = obj is not None and obj.colour == spec.colour
        if spec.size:
            checks[f"size_{i}"] = obj is not None and _size_ok(spec.size, obj.side)
    if scene.relation:
        a, b = objects[0], objects[1]
        checks["relation"] = a is not None and b is not None and _relation_ok(scene.relation, a, b)
    if scene.background:
        checks["background"] = bg == scene.background
    return checks


def check_scene(scene: Scene, image: Image.Image) -> Verdict:
    """Judge an image against an already parsed scene (its content; named flaws are not checked)."""
    bg, found = detect(image)
    n = len(scene.shapes) * scene.count
    best: dict[str, bool] | None = None
    best_key = None
    # Assign detected objects to the caption's objects, keeping the assignment
    # under which most checks hold (colours are weighted first: they are unique).
    pool: list[Detected | None] = found[:4] + [None] * n
    for perm in set(permutations(range(len(pool)), n)):
        objects = [pool[j] for j in perm]
        if any(o is not None and objects.count(o) > 1 for o in objects):
            continue
        checks = _checks(scene, bg, objects)
        checks["count"] = len(found) == n
        colour_hits = sum(v for k, v in checks.items() if k.startswith("colour"))
        key = (colour_hits, sum(checks.values()), [-j for j in perm])
        if best_key is None or key > best_key:
            best, best_key = checks, key
    assert best is not None
    best = {k: bool(v) for k, v in best.items()}
    return Verdict(passed=all(best.values()), checks=best, background=bg, detected=found)


def judge(caption: str, image: Image.Image) -> Verdict | None:
    """Verdict for ``image`` against ``caption``; None if the caption is outside the grammar."""
    scene = parse(caption)
    if scene is None:
        return None
    return check_scene(scene, image)
