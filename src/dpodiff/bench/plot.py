"""Loss-versus-evaluations plot of one prompt (every algorithm), drawn with PIL so no plotting library is needed."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from dpodiff.tasks import make_task

COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]
W, H, LEFT, RIGHT, TOP, BOTTOM = 420, 260, 56, 12, 14, 40


def loss_plot(curves: dict[str, list[float]], task: str) -> Image.Image:
    """Each algorithm's losses in evaluation order (dots) and its best so far (line): lower is better for
    improve, higher for attack."""
    sign = make_task(task).sign
    image = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    values = [v for losses in curves.values() for v in losses]
    if not values:
        return image
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.01, hi + 0.01
    lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)
    n = max(len(v) for v in curves.values())

    def xy(i: int, v: float) -> tuple[float, float]:
        x = LEFT + (W - LEFT - RIGHT) * (i / max(n - 1, 1))
        return x, TOP + (H - TOP - BOTTOM) * (hi - v) / (hi - lo)

    draw.rectangle([LEFT, TOP, W - RIGHT, H - BOTTOM], outline=(160, 160, 160))
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        _, y = xy(0, v)
        draw.line([LEFT - 4, y, LEFT, y], fill="black")
        draw.text((4, y - 6), f"{v:.4f}", fill="black", font=font)
    for i in sorted({0, n - 1, (n - 1) // 2}):
        x, _ = xy(i, lo)
        draw.line([x, H - BOTTOM, x, H - BOTTOM + 4], fill="black")
        draw.text((x - 4, H - BOTTOM + 6), str(i + 1), fill="black", font=font)
    draw.text((LEFT + 60, H - 16), f"evaluation (loss: {'lower' if sign > 0 else 'higher'} is better)", fill="black", font=font)
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
        y = TOP + 10 + 12 * k
        draw.line([W - RIGHT - 90, y, W - RIGHT - 76, y], fill=color, width=2)
        draw.text((W - RIGHT - 72, y - 6), name, fill=color, font=font)
    return image
