"""The caption grammar: sampling, wording and parsing agree."""

import numpy as np

from dpodiff.shapes.grammar import (
    CAPTION_MIXES, COLOURS, DEFECTS, P_COPIES, P_DEFECT, P_NAMED, P_SINGLE, SYNONYMS, Scene, ShapeSpec, near_misses, parse,
    render_caption, same_meaning, sample_caption, sample_training_pair, training_frequencies,
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
                    "a red circle and a red square", "three red circle", "a red circle, shiny", "blurry",
                    "two red circles and a blue square", "two red circles on a red background"]:
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


def test_counts_and_flaws_parse_and_word_back():
    s = parse("three crimson boxes on a blue background, blurry, dark")
    assert s == Scene((ShapeSpec("square", "red"),), None, "blue", count=3, defects=("blurry", "dark"))
    assert render_caption(s) == "three red squares on a blue background, blurry, dark"
    assert parse("two white discs") == Scene((ShapeSpec("circle", "white"),), count=2)
    s = parse("a red circle above a blue square, noisy")
    assert s.relation == "above" and s.defects == ("noisy",) and s.count == 1
    assert same_meaning(parse("two red circles"), parse("two scarlet disks"))
    assert not same_meaning(parse("two red circles"), parse("three red circles"))
    assert not same_meaning(parse("two red circles"), parse("a red circle"))


def test_training_pairs_hide_some_flaws_and_copies_from_their_captions():
    """Flaws and copies appear at their rates; the caption names them about P_NAMED of the time, never wrongly."""
    rng = np.random.default_rng(2)
    n, flawed, copies, named_flaws, named_copies = 6000, 0, 0, 0, 0
    for _ in range(n):
        shown, named, caption = sample_training_pair(rng)
        assert parse(caption) is not None and same_meaning(parse(caption), named), caption
        assert parse(caption).defects == named.defects
        assert set(named.defects) <= set(shown.defects) and named.count in (1, shown.count)
        assert named.shapes == shown.shapes and named.background == shown.background
        flawed += bool(shown.defects)
        named_flaws += bool(named.defects)
        copies += shown.count > 1
        named_copies += named.count > 1
        assert all(d in DEFECTS for d in shown.defects)
    assert abs(flawed / n - P_DEFECT) < 0.02
    assert abs(copies / n - P_SINGLE * P_COPIES) < 0.015
    assert abs(named_flaws / flawed - P_NAMED) < 0.07 and abs(named_copies / copies - P_NAMED) < 0.1


def test_the_named_mix_flaws_more_images_and_names_most_flaws_and_copies_often_alone():
    """Release 3.1's captions: a quarter of the images flawed, flaws and copies named at ``mix.named``, and a named
    count often alone ("two", "three, faded"), which a negative prompt "two, three" then names; no count word
    for copies the caption does not name."""
    from dpodiff.shapes.grammar import COUNT_WORDS

    mix = CAPTION_MIXES["named"]
    rng = np.random.default_rng(4)
    n, flawed, named_flaws, copies, named_copies, count_alone = 8000, 0, 0, 0, 0, 0
    for _ in range(n):
        shown, named, caption = sample_training_pair(rng, mix)
        flawed += bool(shown.defects)
        named_flaws += bool(named.defects)
        copies += shown.count > 1
        named_copies += named.count > 1
        words = set(caption.split(", "))
        assert named.count > 1 or not words & {"two", "three"}, caption
        count_alone += named.count > 1 and COUNT_WORDS[named.count] in words and words <= {COUNT_WORDS[named.count], *named.defects}
    assert abs(flawed / n - mix.defect) < 0.02 and abs(copies / n - P_SINGLE * mix.copies) < 0.015
    assert abs(named_flaws / flawed - mix.named) < 0.05 and abs(named_copies / copies - mix.named) < 0.06
    assert abs(count_alone / named_copies - mix.flaws_alone) < 0.08


def test_near_misses_of_copies_change_the_count_or_the_object():
    rng = np.random.default_rng(3)
    scene = parse("two red circles")
    misses = near_misses(scene, rng, 4)
    assert len(misses) == 4 and not any(same_meaning(m, scene) for m in misses)
    assert any(m.count != 2 for m in misses)
    assert all(parse(render_caption(m)) is not None for m in misses)


def _concepts(tag: str) -> set[str]:
    """What a tag names, in canonical words ("scarlet" -> red, "boxes" -> square, "ivory background" -> white background)."""
    from dpodiff.shapes.grammar import PLURALS

    plural = {p: w for w, p in PLURALS.items()}
    words = tag.split()
    if words[-1] == "background":
        return {f"{c} background" for c in SYNONYMS if " ".join(words[:-1]) in SYNONYMS[c]}
    word = plural.get(tag, tag)
    return {c for c in SYNONYMS if word in SYNONYMS[c]} | ({tag} if tag in DEFECTS + ("two", "three") else set())


def test_varied_captions_come_in_sds_styles_and_name_only_what_the_image_shows():
    """Tag lists, single tags, flaw tags alone and partial captions at their shares; every tag names something
    of the named scene, and sentences still parse to it."""
    from dpodiff.shapes.grammar import P_FLAWS_ALONE, P_ONE_TAG, P_PARTIAL, P_TAGS, tags

    rng = np.random.default_rng(3)
    n, counts = 8000, {"flaw named": 0, "flaws alone": 0, "two": 0, "partial": 0, "sentence": 0, "tags": 0, "one": 0}
    for _ in range(n):
        shown, named, caption = sample_training_pair(rng, CAPTION_MIXES["varied"])
        scene = parse(caption)
        counts["flaw named"] += bool(named.defects)
        counts["two"] += len(named.shapes) == 2
        if named.defects and caption == ", ".join(named.defects):
            counts["flaws alone"] += 1
        elif scene is not None and len(scene.shapes) < len(named.shapes):
            counts["partial"] += 1
            assert scene.shapes[0] in named.shapes and scene.background == named.background, caption
        elif scene is not None:
            counts["sentence"] += 1
            assert same_meaning(scene, named), caption
        else:
            parts = caption.split(", ")
            counts["tags" if len(parts) > 1 else "one"] += 1
            truth = set().union(*(_concepts(t) for g in tags(named) for t in g))
            assert all(_concepts(p) & truth for p in parts), (caption, truth)
    assert abs(counts["flaws alone"] / counts["flaw named"] - P_FLAWS_ALONE) < 0.08
    assert abs(counts["partial"] / counts["two"] - P_PARTIAL) < 0.04
    rest = n - counts["flaws alone"] - counts["partial"]
    assert abs(counts["tags"] / rest - P_TAGS) < 0.03 and abs(counts["one"] / rest - P_ONE_TAG) < 0.03


def test_tags_keep_each_objects_words_together_and_name_copies_and_flaws():
    from dpodiff.shapes.grammar import tags

    scene = Scene((ShapeSpec("circle", "red", "small"), ShapeSpec("square", "blue")), "above", "white", defects=("blurry",))
    assert tags(scene) == [["small", "red", "circle"], ["blue", "square"], ["white background"], ["blurry"]]
    assert tags(Scene((ShapeSpec("square", "green"),), count=2)) == [["two", "green", "squares"]]
