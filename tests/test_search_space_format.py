import json

import pytest

from dpodiff.errors import UsageError
from dpodiff.spaces import SearchSpace, Slot, Span, load_space

PROMPT = "A red circle above a blue square"


def make_space() -> SearchSpace:
    return SearchSpace(
        PROMPT,
        positive=[Span(2, 5, ["red", "crimson", "scarlet red"]), Span(6, 12, ["circle", "disk"])],
        negative=[Slot("red", ["blue", "green"]), Slot("quality", ["blurry", "low quality"])],
        keywords=["red", "circle", "blue", "square"],
    )


def test_render_replaces_spans_and_joins_negative_slots():
    space = make_space()
    assert space.sizes() == [3, 2, 3, 3]
    assert space.render((0, 0, 0, 0)) == (PROMPT, "")
    # multi-token substitutes are kept whole
    assert space.render((2, 1, 2, 1)) == ("A scarlet red disk above a blue square", "green, blurry,")
    # only the negative part searched: the positive prompt stays the user's
    assert space.render((1, 2), positive=False) == (PROMPT, "blue, low quality,")
    assert space.size(positive=False) == 9


def test_our_format_round_trips(tmp_path):
    space = make_space()
    space.save(tmp_path / "space.json")
    data = json.loads((tmp_path / "space.json").read_text())
    assert data["format"] == "dpodiff-space" and data["version"] == 1
    assert data["negative"][0]["choices"] == ["", "blue", "green"]
    again = load_space(tmp_path / "space.json", PROMPT)
    assert again.to_dict() == space.to_dict()


def test_reference_format_imports(tmp_path):
    reference = {
        PROMPT: {
            "synonym": {"red": ["crimson", "scarlet"], "square": ["box"], "unicorn": ["horse"]},
            "antonym": {"red": ["blue", "green"], "above": ["below"]},
            "keywords": ["red", "square"],
        },
        "another prompt": {"synonym": {}, "antonym": {}, "keywords": []},
    }
    (tmp_path / "ref.json").write_text(json.dumps(reference))
    space = load_space(tmp_path / "ref.json", PROMPT)
    assert [s.choices for s in space.positive] == [["red", "crimson", "scarlet"], ["square", "box"]]  # unicorn: not in prompt
    assert [s.choices for s in space.negative] == [["", "blue", "green"], ["", "below"]]
    assert space.keywords == ["red", "square"]
    assert space.render((1, 1, 0, 0)) == ("A crimson circle above a blue box", "")


def test_space_for_another_prompt_is_refused(tmp_path):
    make_space().save(tmp_path / "space.json")
    with pytest.raises(UsageError, match="built for the prompt"):
        load_space(tmp_path / "space.json", "a green triangle")
    (tmp_path / "ref.json").write_text(json.dumps({"a cat": {"synonym": {}, "antonym": {}, "keywords": []}}))
    with pytest.raises(UsageError, match="no entry for the prompt"):
        load_space(tmp_path / "ref.json", "a green triangle")


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"format": "dpodiff-space", "version": 99, "prompt": "x"}', "version 99"),
        ('{"format": "dpodiff-space", "version": 1, "prompt": "a red circle", "positive": [{"start": 0, "end": 1, "choices": ["red"]}]}', "reads 'a'"),
        ('{"format": "dpodiff-space", "version": 1, "prompt": "a red circle", "negative": [{"choices": ["x"]}]}', "malformed"),
        ('{"a red circle": {"synonym": {"red": "crimson"}}}', "list of strings"),
        ('{"a red circle": 3}', "reference"),
    ],
)
def test_malformed_space_files_get_clear_errors(tmp_path, content, message):
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(UsageError, match=message):
        load_space(tmp_path / "bad.json", "a red circle")


def test_overlapping_spans_are_refused():
    with pytest.raises(UsageError, match="overlap"):
        SearchSpace("a red circle", positive=[Span(2, 5, ["red"]), Span(4, 12, ["d circle"])])


def test_a_substituted_word_gets_the_article_it_needs():
    from dpodiff.spaces import SearchSpace, Span

    space = SearchSpace("A blue disc and an orange square", positive=[Span(2, 6, ["blue", "azure"]), Span(19, 25, ["orange", "red"])])
    assert space.render([1, 1], negative=False)[0] == "An azure disc and a red square"
    assert space.render([0, 0], negative=False)[0] == "A blue disc and an orange square"
    unicorn = SearchSpace("an hour of a unicorn", positive=[Span(3, 7, ["hour", "hour"])])
    assert unicorn.render([0], negative=False)[0] == "an hour of a unicorn"  # the original's own articles are never touched
