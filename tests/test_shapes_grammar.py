"""The caption grammar: sampling, wording and parsing agree."""

import numpy as np

from dpodiff.shapes.grammar import (
    COLOURS, SYNONYMS, Scene, ShapeSpec, near_misses, parse, render_caption,
    same_meaning, sample_caption, training_frequencies,
)


def test_sampled_captions_parse_back_to_their_scene():
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(2000):
        scene, caption = sample_caption(rng)
        parsed = parse(caption)
        assert parsed is not None, caption
        assert same_meaning(parsed, scene), (caption, parsed, scene)
        kinds.add(scene.kind)
    assert kinds == {"single", "two", "relation"}


def test_every_synonym_parses_including_unseen_ones():
    for concept, words in SYNONYMS.items():
        for word in words:
            if concept in COLOURS:
                caption = f"a {word} square"
                expected = ShapeSpec("square", concept)
            elif concept in ("circle", "square", "triangle"):
                caption = f"a red {word}"
                expected = ShapeSpec(concept, "red")
            elif concept in ("small", "large"):
                caption = f"a {word} red circle"
                expected = ShapeSpec("circle", "red", concept)
            else:
                caption = f"a red circle {word} a blue square"
                scene = parse(caption)
                assert scene is not None and scene.relation == concept, caption
                continue
            scene = parse(caption)
            assert scene is not None and scene.shapes == (expected,), caption


def test_examples_from_the_issue():
    s = parse("a red circle above a blue square")
    assert s == Scene((ShapeSpec("circle", "red"), ShapeSpec("square", "blue")), "above", None)
    s = parse("A small green triangle on a yellow background.")
    assert s == Scene((ShapeSpec("triangle", "green", "small"),), None, "yellow")
    s = parse("a crimson disk to the left of an orange box")
    assert s == Scene((ShapeSpec("circle", "red"), ShapeSpec("square", "orange")), "left of", None)
    assert render_caption(s) == "a red circle to the left of an orange square"


def test_outside_the_grammar_is_none():
    for caption in ["", "a photo of a cat", "a red circle and", "a red circle on a red background",
                    "a red circle and a red square", "three red circles", "a red circle blurry"]:
        assert parse(caption) is None, caption


def test_paraphrases_are_the_same_meaning_and_near_misses_are_not():
    a = parse("a red circle above a blue square")
    assert same_meaning(a, parse("a blue square below a red circle"))
    assert same_meaning(parse("a red circle and a blue square"), parse("a blue square and a red circle"))
    rng = np.random.default_rng(1)
    for _ in range(300):
        scene, _ = sample_caption(rng)
        for miss in near_misses(scene, rng, 3):
            assert not same_meaning(miss, scene)
            assert parse(render_caption(miss)) is not None


def test_synonym_frequencies_are_uneven():
    freq = training_frequencies()
    assert freq["red"]["red"] > 0.9 and freq["red"]["scarlet"] < 0.02
    assert freq["circle"]["disc"] == 0.0  # never seen in training
