"""A labelled image grid, for looking at before/after at a glance."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont


def image_grid(rows: list[list[Image.Image]], row_labels: list[str] | None = None, col_labels: list[str] | None = None, cell: int = 160) -> Image.Image:
    """Images upscaled (nearest, so small images stay crisp) into `cell`-pixel squares, one row per list."""
    font = ImageFont.load_default()
    top = 18 if col_labels else 0
    left = 170 if row_labels else 0
    n_cols = max(len(r) for r in rows)
    grid = Image.new("RGB", (left + n_cols * cell, top + len(rows) * cell), "white")
    draw = ImageDraw.Draw(grid)
    for j, label in enumerate(col_labels or []):
        draw.text((left + j * cell + 4, 3), label, fill="black", font=font)
    for i, row in enumerate(rows):
        if row_labels:
            draw.text((4, top + i * cell + cell // 2 - 6), row_labels[i], fill="black", font=font)
        for j, image in enumerate(row):
            resample = Image.NEAREST if image.width < cell else Image.BICUBIC
            grid.paste(image.convert("RGB").resize((cell, cell), resample), (left + j * cell, top + i * cell))
    return grid
