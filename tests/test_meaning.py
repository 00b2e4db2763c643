"""Rewordings checked by the model's reader (the shapes world's grammar): verified, changed or unparsed."""

import json

import pytest

import dpodiff
from dpodiff.errors import UsageError
from dpodiff.objectives.judge import find_reader, same_meaning
from dpodiff.shapes import grammar
from dpodiff.spaces import SearchSpace, Span
from dpodiff.spaces.wordings import add_wordings

PROMPT = "a red circle above a blue square"


def test_the_grammar_reads_wordings_of_one_scene_as_one_meaning():
    read = grammar.meaning
    assert read("a crimson disc above a blue box") == read(PROMPT) == read("a blue square below a red circle")
    assert read("a red circle and a blue square") == read("a blue square and a red circle") != read(PROMPT)
    assert read("a ruby circle above a blue square") is None


def test_same_meaning():
    read = grammar.meaning
    assert same_meaning(read, PROMPT, "a scarlet disk above a blue box") == "verified"
    assert same_meaning(read, PROMPT, "a red square above a blue square") == "changed"
    assert same_meaning(read, PROMPT, "a blue circle above a red square") == "changed"  # the colours swapped
    assert same_meaning(read, PROMPT, "a reddish circle above a bluish square") == "unparsed"
    assert same_meaning(read, "a red car", "a crimson car") is None  # the reader cannot read the original
    assert same_meaning(None, PROMPT, PROMPT) is None


def test_find_reader(tmp_path):
    assert find_reader(tmp_path) is None
    (tmp_path / "dpodiff_judge.json").write_text(json.dumps({"judge": "dpodiff.shapes.judge:judge"}))
    assert find_reader(tmp_path) is None  # a judge without a reader
    (tmp_path / "dpodiff_judge.json").write_text(json.dumps({"judge": "dpodiff.shapes.judge:judge", "reader": "dpodiff.shapes.grammar:meaning"}))
    assert find_reader(tmp_path) is grammar.meaning
    (tmp_path / "dpodiff_judge.json").write_text(json.dumps({"judge": "dpodiff.shapes.judge:judge", "reader": "os:system"}))
    with pytest.raises(UsageError, match="only functions shipped with dpodiff"):
        find_reader(tmp_path)
    (tmp_path / "dpodiff_judge.json").write_text(json.dumps({"judge": "dpodiff.shapes.judge:judge", "reader": 5}))
    with pytest.raises(UsageError, match="optionally \"reader\""):
        find_reader(tmp_path)


def test_an_attack_never_scores_a_rewording_read_as_another_scene(tiny_pipe, tiny_scorer, tmp_path):
    (tmp_path / "dpodiff_judge.json").write_text(json.dumps({"judge": "dpodiff.shapes.judge:judge", "reader": "dpodiff.shapes.grammar:meaning"}))
    space = SearchSpace(PROMPT, positive=[Span(2, 5, ["red", "crimson", "green", "ruby"]), Span(6, 12, ["circle", "disc", "square"])])
    result = dpodiff.optimize(PROMPT, pipeline=tiny_pipe, scorer=tiny_scorer, task="attack", space=space, algorithm="random",
                              budget=12, seeds=[0], steps=2, validate=None, min_similarity=0.999,
                              model_name=str(tmp_path), judge=lambda caption, image: None)
    scored = {e.prompt: e.meaning for e in result.history}
    # every rewording the grammar reads as the same scene is scored, whatever its sentence similarity
    assert scored == {PROMPT: "verified", "a crimson circle above a blue square": "verified",
                      "a red disc above a blue square": "verified", "a crimson disc above a blue square": "verified"}
    # the one-word swaps that fail alone never reach the search (the pre-filter); the rest are refused in it
    assert [d["prompt"] for d in result.fit["prefiltered"]] == [
        "a green circle above a blue square", "a ruby circle above a blue square", "a red square above a blue square"]
    assert result.space["positive"][0]["choices"] == ["red", "crimson"] and result.space["positive"][1]["choices"] == ["circle", "disc"]
    assert result.stop_reason == "exhausted" and not result.rejections


def test_the_prefilter_keeps_the_synonyms_whose_swap_alone_is_admissible():
    from dpodiff.spaces.prefilter import prefilter

    space = SearchSpace(PROMPT, positive=[Span(2, 5, ["red", "crimson", "green"]), Span(6, 12, ["circle", "ruby"]), Span(21, 25, ["blue", "azure"])])
    kept, dropped = prefilter(space, lambda text: "green" not in text and "ruby" not in text)
    assert [s.choices for s in kept.positive] == [["red", "crimson"], ["blue", "azure"]]  # the span left with no choice is gone
    assert dropped == [{"word": "red", "choice": "green", "prompt": "a green circle above a blue square"},
                       {"word": "circle", "choice": "ruby", "prompt": "a red ruby above a blue square"}]


def test_the_meaning_check_prefers_the_reader_to_the_similarity_constraint():
    from dpodiff.objectives.similarity import SimilarityConstraint
    from dpodiff.optimization import MeaningCheck

    check = MeaningCheck(PROMPT, SimilarityConstraint(PROMPT, 0.999), grammar.meaning)
    assert check("a scarlet disc above a blue box") == (True, None)  # verified: the constraint is not asked
    assert check("a blue circle above a red square") == (False, "meaning")
    assert check("a reddish circle above a blue square") == (False, "unreadable")  # the reader reads the prompt: it decides
    assert MeaningCheck("a red car", SimilarityConstraint("a red car", 0.999), grammar.meaning)("a crimson car") == (False, "similarity")
    assert check.similarity(PROMPT) == pytest.approx(1.0, abs=1e-5) and check.meaning(PROMPT) == "verified"
    assert not MeaningCheck(PROMPT).active and MeaningCheck(PROMPT)("anything") == (True, None)


def test_the_grammar_offers_its_own_wordings():
    assert grammar.wordings("blue") == ["cobalt", "azure"] and grammar.wordings("Circles") == ["discs", "disks"]
    assert grammar.wordings("dog") == [] and grammar.wordings("above") == ["over"]
    space = SearchSpace("A blue circle on a white background", positive=[Span(2, 6, ["blue", "bluish"])])
    added = add_wordings(space, grammar.wordings)
    assert [(s.choices, s.source) for s in added.positive] == [
        (["blue", "bluish", "cobalt", "azure"], ""), (["circle", "disc", "disk"], "model"), (["white", "ivory"], "model")]
    assert add_wordings(space, lambda word: []) == space


def test_the_shapes_world_names_its_reader_and_wordings():
    from dpodiff.shapes.train import PIPELINE_DIR
    from dpodiff.objectives.judge import find_wordings

    assert find_wordings(PIPELINE_DIR) is grammar.wordings and find_reader(PIPELINE_DIR) is grammar.meaning

