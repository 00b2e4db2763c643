"""Loss-versus-evaluations plots (bench's report, the UI's live curve), drawn with PIL so no plotting library is needed."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]
LEFT, RIGHT, BOTTOM = 56, 12, 40


def loss_plot(curves: dict[str, list[float]], sign: int, width: int = 420, height: int = 260, top: int = 14) -> Image.Image:
    """Each curve's losses in evaluation order (dots) and its best so far (line): `sign` 1 when lower is better
    (improve), -1 when higher is (attack). A lone curve has no legend; `top` leaves room for a label laid over it."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    values = [v for losses in curves.values() for v in losses]
    draw.rectangle([LEFT, top, width - RIGHT, height - BOTTOM], outline=(160, 160, 160))
    if not values:
        return image
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.01, hi + 0.01
    lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)
    n = max(len(v) for v in curves.values())

    def xy(i: int, v: float) -> tuple[float, float]:
        x = LEFT + (width - LEFT - RIGHT) * (i / max(n - 1, 1))
        return x, top + (height - top - BOTTOM) * (hi - v) / (hi - lo)

    for k in range(5):
        v = lo + (hi - lo) * k / 4
        _, y = xy(0, v)
        draw.line([LEFT - 4, y, LEFT, y], fill="black")
        draw.text((4, y - 6), f"{v:.4f}", fill="black", font=font)
    for i in sorted({0, n - 1, (n - 1) // 2}):
        x, _ = xy(i, lo)
        draw.line([x, height - BOTTOM, x, height - BOTTOM + 4], fill="black")
        draw.text((x - 4, height - BOTTOM + 6), str(i + 1), fill="black", font=font)
    draw.text((LEFT + 60, height - 16), f"evaluation (loss: {'lower' if sign > 0 else 'higher'} is better)", fill="black", font=font)
    for k, (name, losses) in enumerate(curves.items()):
        color = COLORS[k % len(COLORS)]
        best, points = None, []
        for i, v in enumerate(losses):
            x, y = xy(i, v)
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)
            best = v if best is None else min(best, v, key=lambda u: sign * u)
            points.append(xy(i, best))
        if len(points) > 1:
            draw.line(points, fill=color, width=2 + 2 * (len(curves) - 1 - k))  # earlier curves wider: equal curves stay visible
        if len(curves) > 1:
            y = top + 10 + 12 * k
            draw.line([width - RIGHT - 90, y, width - RIGHT - 76, y], fill=color, width=2)
            draw.text((width - RIGHT - 72, y - 6), name, fill=color, font=font)
    return image
