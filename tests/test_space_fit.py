"""Fitting a search space to the text encoder's token window (dpodiff.spaces.fit)."""

import itertools
import json
import random

import pytest
import torch

from dpodiff.backends.relaxed import negative_layout, positive_layout
from dpodiff.errors import UsageError
from dpodiff.spaces.build import build_task_space
from dpodiff.spaces.fit import fit_space, worst_case_tokens
from dpodiff.spaces.space import SearchSpace, Slot, Span
from dpodiff.tokenizers import clip_tokenizer

torch.set_num_threads(1)

TOK20 = clip_tokenizer(20)
TOK77 = clip_tokenizer(77)


def tokens(tok, text: str) -> int:
    return len(tok(text).input_ids)


def assert_every_candidate_fits(space: SearchSpace, tok, window: int, positive=True, negative=True) -> None:
    """Black-box: every rendered candidate fits; relaxed: each searched part's layout fits (it raises otherwise)."""
    for candidate in itertools.product(*(range(n) for n in space.sizes(positive, negative))):
        pos, neg = space.render(candidate, positive, negative)
        assert tokens(tok, pos) <= window, (candidate, pos)
        assert tokens(tok, neg) <= window, (candidate, neg)
    if negative:
        assert negative_layout(space, tok).rows() <= window
    if positive:
        assert positive_layout(space, tok).rows() <= window


def negative_space() -> SearchSpace:
    """Widths ("choice," tokens): red 4, car 5, quality 3, anatomy 3, artefacts 7; worst case 24."""
    return SearchSpace(
        "a red car",
        positive=[Span(2, 5, ["red", "crimson red"], "wordnet")],
        negative=[
            Slot("red", ["blue", "very dark green"], "wordnet"),
            Slot("car", ["a big red bicycle"], "wordnet"),
            Slot("nplib:quality", ["low quality", "blurry"], "nplib"),
            Slot("nplib:anatomy", ["bad anatomy", "extra limbs"], "nplib"),
            Slot("nplib:artefacts", ["jpeg artifacts watermark signature"], "nplib"),
        ],
        keywords=["red", "car"],
    )


def positive_space() -> SearchSpace:
    """Fixed text 4 tokens; widths red 4 ("very bright scarlet red"), car 4 ("old rusty pickup truck"); worst 14."""
    prompt = "a red car on a road"
    return SearchSpace(
        prompt,
        positive=[
            Span(2, 5, ["red", "crimson red", "very bright scarlet red", "ruby"], "wordnet"),
            Span(6, 9, ["car", "sports car", "old rusty pickup truck"], "wordnet"),
        ],
        negative=[Slot("car", ["bicycle"], "wordnet")],
    )


def test_a_space_that_fits_is_unchanged():
    space = negative_space()
    fitted, report = fit_space(space, TOK77)
    assert fitted.to_dict() == space.to_dict()
    assert fitted is not space
    assert report.dropped == []
    assert report.window == 77
    assert report.negative_tokens_before == report.negative_tokens_after == 24
    assert report.positive_tokens_before == report.positive_tokens_after == 2 + 2 + 2  # "a", " car", "crimson red"


def test_worst_case_matches_the_relaxed_layout():
    space = negative_space()
    assert worst_case_tokens(space, TOK77, "negative") == negative_layout(space, TOK77).rows() == 24
    assert worst_case_tokens(space, TOK77, "positive") == positive_layout(space, TOK77).rows() == 6
    with pytest.raises(ValueError):
        worst_case_tokens(space, TOK77, "both")


def test_negative_overflow_drops_library_slots_first_widest_first():
    space = negative_space()
    before = space.to_dict()
    fitted, report = fit_space(space, TOK20)
    assert [d.name for d in report.dropped] == ["nplib:artefacts"]  # the widest; 24 - 7 = 17 fits
    assert report.negative_tokens_before == 24 and report.negative_tokens_after == 17
    assert report.dropped[0].choices == ["jpeg artifacts watermark signature"]
    assert "library slot" in report.dropped[0].reason and "24" in report.dropped[0].reason
    assert space.to_dict() == before  # the input is not changed
    assert_every_candidate_fits(fitted, TOK20, 20)

    fitted, report = fit_space(space, TOK20, window=10)
    # all library slots (tie quality/anatomy: the later first), then the widest antonym slot
    assert [d.name for d in report.dropped] == ["nplib:artefacts", "nplib:anatomy", "nplib:quality", "car"]
    assert [s.name for s in fitted.negative] == ["red"]
    assert report.negative_tokens_after == 6
    assert_every_candidate_fits(fitted, TOK20, 10)


def test_positive_overflow_removes_longest_choices_and_keeps_the_original():
    space = positive_space()
    assert worst_case_tokens(space, TOK20, "positive") == 14
    fitted, report = fit_space(space, TOK20, window=10)
    assert [s.choices for s in fitted.positive] == [["red", "crimson red", "ruby"], ["car", "sports car"]]
    assert [(d.part, d.name, d.choices) for d in report.dropped] == [
        ("positive", "red", ["very bright scarlet red"]),
        ("positive", "car", ["old rusty pickup truck"]),
    ]
    assert report.positive_tokens_before == 14 and report.positive_tokens_after == 10
    assert_every_candidate_fits(fitted, TOK20, 10)

    fitted, report = fit_space(space, TOK20, window=8)
    assert [s.choices for s in fitted.positive] == [["red", "ruby"], ["car"]]  # "car" stays, offers no choice
    assert "only the original is left" in report.dropped[-1].reason
    assert_every_candidate_fits(fitted, TOK20, 8)


def test_an_unsearched_part_is_never_changed():
    space = positive_space()
    fitted, report = fit_space(space, TOK20, window=8, positive=False)
    assert [s.choices for s in fitted.positive] == [s.choices for s in space.positive]
    assert report.dropped == [] and report.positive_tokens_before == report.positive_tokens_after == 8
    assert_every_candidate_fits(fitted, TOK20, 8, positive=False)

    space = negative_space()
    fitted, report = fit_space(space, TOK20, window=10, negative=False)
    assert [s.name for s in fitted.negative] == [s.name for s in space.negative]
    assert report.negative_tokens_before == report.negative_tokens_after == 2


def test_a_prompt_longer_than_the_window_is_a_usage_error():
    prompt = "a very long prompt about a red car parked on a wet road in the rain at night with neon lights"
    space = SearchSpace(prompt, negative=[Slot("car", ["bicycle"])])
    with pytest.raises(UsageError, match=r"needs \d+ tokens.*window of 20.*Shorten the prompt"):
        fit_space(space, TOK20)


def test_fitting_that_leaves_nothing_is_a_usage_error():
    space = SearchSpace("a cat", negative=[Slot("nplib:artefacts", ["jpeg artifacts watermark signature"], "nplib")])
    with pytest.raises(UsageError, match=r"window of 8 leaves nothing.*nplib:artefacts"):
        fit_space(space, TOK20, window=8)
    space = SearchSpace("a cat", positive=[Span(2, 5, ["cat", "big fluffy orange cat"])])
    with pytest.raises(UsageError, match=r"window of 6 leaves nothing.*big fluffy orange cat"):
        fit_space(space, TOK20, window=6)
    # nothing to search before: nothing lost, no error
    fitted, report = fit_space(SearchSpace("a cat"), TOK20)
    assert report.dropped == [] and fitted.size() == 1


def test_report_is_json():
    _, report = fit_space(negative_space(), TOK20, window=10)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["window"] == 10 and data["dropped"][0]["part"] == "negative"


def test_a_built_space_fits_the_shapes_window(tmp_path):
    space = build_task_space("a red circle above a blue square", "improve", with_positive=True, source="wordnet", cache_dir=tmp_path)
    same, report = fit_space(space, TOK77)
    assert report.dropped == [] and same.to_dict() == space.to_dict()

    fitted, report = fit_space(space, TOK20)
    dropped = [d for d in report.dropped if d.part == "negative"]
    assert dropped and all(d.name.startswith("nplib:") for d in dropped)
    assert report.negative_tokens_after <= 20 < report.negative_tokens_before
    assert negative_layout(fitted, TOK20).rows() <= 20 and positive_layout(fitted, TOK20).rows() <= 20
    rng = random.Random(0)
    sizes = fitted.sizes()
    longest = tuple(n - 1 for n in sizes)  # choices are not sorted by length; checked with the samples
    for candidate in [longest] + [tuple(rng.randrange(n) for n in sizes) for _ in range(300)]:
        pos, neg = fitted.render(candidate)
        assert tokens(TOK20, pos) <= 20 and tokens(TOK20, neg) <= 20
