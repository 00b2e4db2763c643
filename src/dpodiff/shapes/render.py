"""Drawing scenes as 32x32 RGB images (numpy + PIL, no torchvision).

Shapes are drawn at 4x resolution and box-filtered down, so edges are
anti-aliased like a photograph's rather than hard pixel steps. Geometry is
chosen so that the judge's rules hold with a margin: relations are
unambiguous (the dominant axis of the centre offset is the named one) and
size words map to disjoint side-length ranges. A scene's flaws (blurry,
noisy, faded, dark, cropped) are applied last, strongly enough to see at 32x32.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .grammar import COLOURS, PALETTE, SHAPES, Scene, ShapeSpec

IMAGE_SIZE = 32
SUPERSAMPLE = 4
# Side length (pixels at 32x32) by size word; None = no size word.
SIZE_RANGE = {"small": (7, 10), "large": (18, 23), None: (7, 23)}
PAIR_SIZE_RANGE = (8, 13)


@dataclass(frozen=True)
class Placed:
    """Where one shape was drawn: bounding box [x0, x1) x [y0, y1) in pixels."""

    spec: ShapeSpec
    x0: int
    y0: int
    side: int

    @property
    def centre(self) -> tuple[float, float]:
        return self.x0 + self.side / 2, self.y0 + self.side / 2


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float], fill) -> None:
    """Draw one canonical shape filling ``box`` (x0, y0, x1, y1), exclusive end."""
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif shape == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=fill)
    elif shape == "triangle":
        draw.polygon([(x0, y1 - 1), (x1 - 1, y1 - 1), ((x0 + x1 - 1) / 2, y0)], fill=fill)
    else:
        raise ValueError(shape)


def _relation_ok(a: Placed, b: Placed, relation: str | None) -> bool:
    gap = 1
    (ax, ay), (bx, by) = a.centre, b.centre
    separate_x = a.x0 + a.side + gap <= b.x0 or b.x0 + b.side + gap <= a.x0
    separate_y = a.y0 + a.side + gap <= b.y0 or b.y0 + b.side + gap <= a.y0
    if not (separate_x or separate_y):
        return False
    dx, dy = bx - ax, by - ay
    if relation is None:
        return True
    if relation in ("above", "below"):
        sign = 1 if relation == "above" else -1
        return sign * dy > 0 and abs(dy) >= 1.5 * abs(dx) and separate_y
    sign = 1 if relation == "left of" else -1
    return sign * dx > 0 and abs(dx) >= 1.5 * abs(dy) and separate_x


def layout(scene: Scene, rng: np.random.Generator) -> list[Placed]:
    """Random positions and sizes satisfying the scene (rejection sampling); copies count as objects."""
    specs = scene.shapes * scene.count
    if len(specs) == 1:
        spec = specs[0]
        lo, hi = SIZE_RANGE[spec.size]
        side = int(rng.integers(lo, hi + 1))
        x0, y0 = rng.integers(1, IMAGE_SIZE - side, size=2)
        placed = [Placed(spec, int(x0), int(y0), side)]
    else:
        placed = _apart(specs, scene.relation, rng)
    return _cropped(placed, rng) if "cropped" in scene.defects else placed


def _apart(specs, relation: str | None, rng: np.random.Generator) -> list[Placed]:
    for _ in range(1000):
        placed = []
        for spec in specs:
            side = int(rng.integers(PAIR_SIZE_RANGE[0], PAIR_SIZE_RANGE[1] + 1))
            x0, y0 = rng.integers(1, IMAGE_SIZE - side, size=2)
            placed.append(Placed(spec, int(x0), int(y0), side))
        if _relation_ok(placed[0], placed[1], relation) and all(
                _relation_ok(a, b, None) for a, b in combinations(placed, 2)):
            return placed
    raise RuntimeError(f"no layout found for {specs} {relation}")


def _cropped(placed: list[Placed], rng: np.random.Generator) -> list[Placed]:
    """Move one object so that the frame cuts off 35-55% of it."""
    i = int(rng.integers(len(placed)))
    p = placed[i]
    cut = int(round(p.side * rng.uniform(0.35, 0.55)))
    edge = int(rng.integers(4))
    x0, y0 = p.x0, p.y0
    if edge == 0:
        x0 = -cut
    elif edge == 1:
        x0 = IMAGE_SIZE - p.side + cut
    elif edge == 2:
        y0 = -cut
    else:
        y0 = IMAGE_SIZE - p.side + cut
    return placed[:i] + [replace(p, x0=x0, y0=y0)] + placed[i + 1:]


def flawed(image: Image.Image, defect: str, rng: np.random.Generator) -> Image.Image:
    """The image with one photographic flaw (cropping happens at layout)."""
    if defect == "blurry":
        return image.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.0, 1.6))))
    arr = np.asarray(image, dtype=np.float32)
    if defect == "noisy":
        arr = arr + rng.normal(0.0, 32.0, arr.shape)
    elif defect == "faded":  # washed out towards a light grey
        arr = arr * 0.4 + 0.6 * 175.0
    elif defect == "dark":
        arr = arr * float(rng.uniform(0.25, 0.4))
    elif defect != "cropped":
        raise ValueError(f"unknown flaw {defect!r}")
    return Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8))


def background_for(scene: Scene, rng: np.random.Generator) -> str:
    """The named background, or a random colour unused by the shapes."""
    if scene.background:
        return scene.background
    used = {s.colour for s in scene.shapes}
    free = [c for c in COLOURS if c not in used]
    return free[rng.integers(len(free))]


def draw(placed: list[Placed], background: str, colour_of=None) -> Image.Image:
    """Rasterise placed shapes; ``colour_of(spec)`` overrides fill colours (tests)."""
    s = SUPERSAMPLE
    img = Image.new("RGB", (IMAGE_SIZE * s, IMAGE_SIZE * s), PALETTE[background])
    d = ImageDraw.Draw(img)
    for p in placed:
        colour = colour_of(p.spec) if colour_of else PALETTE[p.spec.colour]
        box = (p.x0 * s, p.y0 * s, (p.x0 + p.side) * s, (p.y0 + p.side) * s)
        draw_shape(d, p.spec.shape, box, colour)
    return img.reduce(s)


def render(scene: Scene, rng: np.random.Generator) -> Image.Image:
    """An image that truthfully shows ``scene``, flaws included."""
    image = draw(layout(scene, rng), background_for(scene, rng))
    for defect in scene.defects:
        image = flawed(image, defect, rng)
    return image


def render_array(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(render(scene, rng), dtype=np.uint8)


def render_wrong(scene: Scene, rng: np.random.Generator, what: str) -> Image.Image:
    """A truthful layout of `scene` with one shape's colour (what="colour") or shape changed: the judge must fail it."""
    placed = layout(scene, rng)
    bg = background_for(scene, rng)
    i = int(rng.integers(len(placed)))
    spec = placed[i].spec
    if what == "colour":
        used = {s.colour for s in scene.shapes} | {bg}
        free = [c for c in COLOURS if c not in used]
        new = free[int(rng.integers(len(free)))]
        return draw(placed, bg, lambda s: PALETTE[new if s is spec else s.colour])
    other = [s for s in SHAPES if s != spec.shape][int(rng.integers(2))]
    placed[i] = type(placed[i])(ShapeSpec(other, spec.colour, spec.size), placed[i].x0, placed[i].y0, placed[i].side)
    return draw(placed, bg)
