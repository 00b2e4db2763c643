"""The loss curves of bench's report and the UI: the best-so-far line follows the task's direction."""

import numpy as np

from dpodiff.report.curves import COLORS, loss_plot


def _line_rows(image, color) -> np.ndarray:
    """Per image row, how many pixels have the curve's colour."""
    pixels = np.asarray(image.convert("RGB"))
    return (pixels == np.array(color, dtype=np.uint8)).all(-1).sum(1)


def test_the_best_so_far_line_follows_the_task():
    losses = [0.5, 0.2, 0.8, 0.35, 0.6]  # best so far: improve 0.2 from the second on; attack 0.8 from the third on
    for sign, low_half in ((1, True), (-1, False)):
        rows = _line_rows(loss_plot({"loss": losses}, sign, width=400, height=300), COLORS[0])
        flat = int(rows.argmax())  # the row of the long flat stretch of the best-so-far line
        assert rows[flat] > 100  # three of the four gaps between evaluations lie on it
        assert (flat > 150) == low_half, (sign, flat)


def test_several_curves_get_a_legend_and_an_empty_run_a_frame():
    corner = (300, 16, 405, 60)  # top right inside the frame, where the legend goes; these curves pass below it
    two = loss_plot({"random": [0.5, 0.4], "epo": [0.5, 0.3]}, 1)
    one = loss_plot({"random": [0.5, 0.4]}, 1)
    assert (np.asarray(two.crop(corner)) == np.array(COLORS[1], dtype=np.uint8)).all(-1).any()  # "epo" in its colour
    assert (np.asarray(one.crop(corner).convert("L")) == 255).all()  # one curve: no legend
    empty = np.asarray(loss_plot({"loss": []}, 1).convert("L"))
    assert 0 < (empty < 255).mean() < 0.05  # the frame alone
