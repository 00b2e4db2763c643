"""The judge is right on ground-truth images and fails wrong ones."""

import numpy as np
from PIL import Image

from dataclasses import replace

from dpodiff.shapes.grammar import PALETTE, Scene, ShapeSpec, parse, render_caption, sample_caption
from dpodiff.shapes.judge import detect, judge
from dpodiff.shapes.render import render, render_wrong


def test_ground_truth_images_pass():
    rng = np.random.default_rng(123)
    passed = 0
    for _ in range(300):
        scene, caption = sample_caption(rng)
        verdict = judge(caption, render(scene, rng))
        passed += verdict.passed
    assert passed >= 297  # >= 99%


def test_wrong_colour_or_shape_fails():
    rng = np.random.default_rng(7)
    for what, check in [("colour", "colour"), ("shape", "shape")]:
        failed = 0
        for _ in range(150):
            scene, caption = sample_caption(rng)
            verdict = judge(caption, render_wrong(scene, rng, what))
            failed += not verdict.passed
            assert not all(v for k, v in verdict.checks.items() if k.startswith(check))
        assert failed == 150, what


def test_relation_size_background_and_count_are_checked():
    rng = np.random.default_rng(3)
    scene = Scene((ShapeSpec("circle", "red"), ShapeSpec("square", "blue")), "above", "white")
    image = render(scene, rng)
    assert judge("a red circle above a blue square on a white background", image).passed
    v = judge("a red circle below a blue square", image)
    assert not v.passed and v.checks["relation"] is False and v.checks["colour_1"]
    v = judge("a red circle above a blue square on a black background", image)
    assert not v.passed and v.checks["background"] is False
    v = judge("a red circle", image)
    assert not v.passed and v.checks["count"] is False
    big = render(Scene((ShapeSpec("triangle", "green", "large"),), None, None), rng)
    assert judge("a large green triangle", big).passed
    assert not judge("a tiny green triangle", big).passed


def test_synonyms_are_judged_like_common_words():
    rng = np.random.default_rng(4)
    scene = Scene((ShapeSpec("circle", "red"), ShapeSpec("square", "blue")), "left of", None)
    image = render(scene, rng)
    assert judge("a scarlet disc left of a cobalt box", image).passed
    assert not judge("a scarlet disc right of a cobalt box", image).passed


def test_unparsable_caption_gives_none_and_any_image_size_works():
    rng = np.random.default_rng(5)
    scene, caption = sample_caption(rng, "single")
    image = render(scene, rng)
    assert judge("a photo of an astronaut", image) is None
    big = image.resize((256, 256), Image.NEAREST)
    verdict = judge(caption, big)
    assert verdict.passed
    d = verdict.to_dict()
    assert d["pass"] is True and set(d["checks"]) >= {"count", "shape_1", "colour_1"}
    assert render_caption(scene)  # the common wording exists for every scene


def test_copies_are_counted():
    rng = np.random.default_rng(8)
    for caption in ("two red circles", "three blue triangles on a white background"):
        image = render(parse(caption), rng)
        assert judge(caption, image).passed, caption
        assert len(detect(image)[1]) == parse(caption).count
        assert not judge(caption.replace("two", "three").replace("three blue", "two blue"), image).passed
    image = render(parse("two green squares"), rng)
    v = judge("a green square", image)
    assert not v.passed and v.checks["count"] is False and v.checks["shape_1"] and v.checks["colour_1"]


def _flawed(defect: str, seed: int = 9):
    """The same scene drawn flawless and with one flaw (same layout: the flaw is applied after drawing)."""
    scene = Scene((ShapeSpec("square", "yellow", "large"),), None, "blue")
    clean = np.asarray(render(scene, np.random.default_rng(seed)), dtype=float)
    flawed = np.asarray(render(replace(scene, defects=(defect,)), np.random.default_rng(seed)), dtype=float)
    return scene, clean, flawed


def test_flaws_are_visible_and_the_judge_sees_what_they_hide():
    scene, clean, dark = _flawed("dark")
    assert dark.mean() < 0.45 * clean.mean()
    assert not judge(render_caption(scene), Image.fromarray(dark.astype(np.uint8))).passed  # its colours are gone
    _, clean, faded = _flawed("faded")
    assert faded.std() < 0.5 * clean.std()
    _, clean, noisy = _flawed("noisy")
    assert 20 < (noisy - clean).std() < 40
    _, clean, blurry = _flawed("blurry")
    assert np.abs(np.diff(blurry, axis=1)).max() < 0.6 * np.abs(np.diff(clean, axis=1)).max()  # no hard edges left
    assert abs(blurry.mean() - clean.mean()) < 3  # blur moves colour around, it does not add or remove it
    # cropped: the frame cuts the object, which a flawless layout never lets touch the border
    yellow = np.array(PALETTE["yellow"], dtype=float)

    def on_border(image) -> bool:
        a = np.asarray(image, dtype=float)
        border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
        return bool((np.abs(border - yellow).sum(-1) < 30).any())

    rng = np.random.default_rng(10)
    assert not any(on_border(render(scene, rng)) for _ in range(20))
    assert all(on_border(render(replace(scene, defects=("cropped",)), rng)) for _ in range(20))
    assert render_caption(replace(scene, defects=("cropped", "noisy"))).endswith(", cropped, noisy")
