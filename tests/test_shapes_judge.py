"""The judge is right on ground-truth images and fails wrong ones."""

import numpy as np
from PIL import Image

from dpodiff.shapes.grammar import Scene, ShapeSpec, render_caption, sample_caption
from dpodiff.shapes.judge import judge
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
