"""Negative-prompt responsiveness: flaws read off images, and the paired bookkeeping of the table."""

import numpy as np
import pytest

from dpodiff.shapes.grammar import DEFECTS, Scene, ShapeSpec, parse
from dpodiff.shapes.render import render
from dpodiff.shapes.responsiveness import calibrate, negative_response, other_colour, swapped, table, wilson


@pytest.fixture(scope="module")
def thresholds():
    return calibrate(None, n=120, seed=1)


def test_each_flaw_is_read_off_renders_and_clean_renders_show_none(thresholds):
    rng = np.random.default_rng(7)
    scenes = [parse(p) for p in ("a red circle", "a small blue square on a white background", "a green triangle and a purple circle",
                                 "a large yellow triangle", "a black square above an orange circle", "a white circle on a blue background")]
    scenes = [s for s in scenes for _ in range(15)]
    clean = [thresholds.flaws(np.asarray(render(s, rng))) for s in scenes]
    assert np.mean([bool(f) for f in clean]) <= 0.05, clean
    for flaw in DEFECTS:
        found = [flaw in thresholds.flaws(np.asarray(render(Scene(s.shapes, s.relation, s.background, defects=(flaw,)), rng)))
                 for s in scenes]
        assert np.mean(found) >= 0.9, flaw


def test_wilson_intervals():
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)


def test_negatives_of_the_colour_rows():
    scene = parse("a red circle and a blue square on a white background")
    assert swapped(scene) == "a blue circle and a red square on a white background"
    rng = np.random.default_rng(0)
    assert all(other_colour(scene, rng) not in ("red", "blue", "white") for _ in range(50))


def test_a_negative_that_removes_its_flaw_is_counted_paired_by_seed(thresholds):
    """The renderer stands in for a generator that draws every image blurry unless the negative prompt says
    "blurry": the blurry row must show the flaw going away on (nearly) every seed and appearing on none."""

    def generate(prompts, seeds, negative):
        negatives = negative if isinstance(negative, list) else [negative] * len(prompts)
        out = []
        for p, s, neg in zip(prompts, seeds, negatives):
            scene = parse(p)
            flaws = () if neg and "blurry" in neg else ("blurry",)
            out.append(render(Scene(scene.shapes, scene.relation, scene.background, defects=flaws), np.random.default_rng(s)))
        return out

    rows = negative_response(None, 12, 8, thresholds=thresholds, generate=generate)
    by_name = {r.name: r for r in rows}
    assert [r.name for r in rows] == list(DEFECTS) + ["copies", "every flaw", "another colour", "swapped scene"]
    blurry = by_name["blurry"]
    assert blurry.n == 20 and blurry.flaw_without >= 18 and blurry.flaw_with <= 1
    assert blurry.went_away == blurry.flaw_without - blurry.flaw_with and blurry.appeared == 0
    assert by_name["noisy"].flaw_with == by_name["noisy"].flaw_without  # the same images: "noisy" changes nothing
    assert by_name["every flaw"].per_flaw_with["blurry"] <= 1
    assert by_name["another colour"].n == 12 and by_name["swapped scene"].n == 8
    lines = table(rows)
    assert len(lines) == 2 + len(rows) and lines[2].startswith('| "blurry" (blurry) |')


def test_the_shipped_generator_goes_through_every_row(thresholds):
    import torch
    from diffusers import StableDiffusionPipeline

    from dpodiff.shapes import PIPELINE_DIR

    pipe = StableDiffusionPipeline.from_pretrained(PIPELINE_DIR, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    through_vae = calibrate(pipe.vae, n=16)
    assert through_vae.values.keys() == thresholds.values.keys() and all(np.isfinite(list(through_vae.values.values())))
    seen = []
    rows = negative_response(pipe, 2, 2, thresholds=through_vae, progress=seen.append)
    assert seen[0] == "no negative prompt" and len(seen) == len(rows) + 1
    assert all(0 <= r.pass_with <= r.n and 0 <= r.flaw_with <= r.n for r in rows)


def test_a_flaw_asked_for_is_counted_when_the_generator_draws_what_the_prompt_says(thresholds):
    """The renderer stands in for a generator that draws exactly its prompt and ignores the negative: every flaw
    asked for shows, none shows unasked, and negating changes nothing."""
    from dpodiff.shapes.responsiveness import asked_prompt, asked_response, asked_table

    assert asked_prompt(parse("a small purple circle"), "faded") == "a small purple circle, faded"
    assert asked_prompt(parse("a small purple circle"), "copies") == "two purple circles"  # the grammar names no size for copies

    def generate(prompts, seeds, negative):
        return [render(parse(p), np.random.default_rng(s)) for p, s in zip(prompts, seeds)]

    rows = asked_response(None, 12, thresholds=thresholds, generate=generate)
    assert [r.flaw for r in rows] == list(DEFECTS) + ["copies"]
    for r in rows:
        assert r.n == 12 and r.plain <= 1 and r.asked >= 11 and r.asked_negated == r.asked, r
    assert len(asked_table(rows)) == 2 + len(rows)
