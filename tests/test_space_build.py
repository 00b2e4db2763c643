"""Spaces built per prompt: what they contain, the task spaces, the cache, bad input."""

import pytest

from dpodiff.errors import UsageError
from cli_runner import run_cli
from dpodiff.spaces import build as build_module
from dpodiff.spaces.build import build_space, build_task_space
from dpodiff.spaces.reference import to_reference
from dpodiff.spaces.space import SearchSpace


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DPODIFF_CACHE", str(tmp_path / "cache"))


def _spans(space):
    return {s.original: s.choices[1:] for s in space.positive}


def _slots(space):
    return {s.name: s.choices[1:] for s in space.negative}


def test_antonym_space_of_colours_and_sizes():
    slots = _slots(build_space("a red car next to a huge tree", "antonym"))
    assert {"blue", "green"} <= set(slots["red"])
    assert "little" in slots["huge"] or "small" in slots["huge"]
    assert all(len(c) <= 5 for c in slots.values())


def test_opposites_of_nouns_are_sister_terms_in_used_senses():
    slots = _slots(build_space("a horse in a kitchen at sunset", "antonym"))
    assert {"mule", "zebra"} <= set(slots["horse"])
    assert {"bedroom", "bathroom"} <= set(slots["kitchen"]) and "sunrise" in slots["sunset"]
    assert not {"hinny", "quagga", "tapir"} & set(slots["horse"])  # unrelated to "horse" under the sentence model
    assert "none" not in slots["sunset"]  # "none" (a canonical hour) is a stopword: never a choice


def test_synonyms_keep_plural_case_and_skip_stopwords():
    space = build_space("Two Dogs in the snow", "synonym")
    spans = _spans(space)
    assert "Dogs" in spans and spans["Dogs"]
    assert all(c[0].isupper() and c.endswith("s") for c in spans["Dogs"])
    assert "Puppies" not in spans["Dogs"]  # a narrower word changes what is drawn (labelled wrong in benchmarks/data)
    assert not {"Two", "in", "the"} & set(spans)
    assert space.keywords == ["Dogs", "snow"]
    text, _ = space.render(tuple(1 for _ in space.positive), negative=False)
    assert text.startswith("Two ") and " in the " in text


def test_verb_synonyms_keep_third_person():
    spans = _spans(build_space("a red car flies over the city", "synonym"))
    assert spans["flies"] and all(c.endswith("s") for c in spans["flies"])
    assert "wings" in spans["flies"] and "hovers" not in spans["flies"]  # hovering is not flying


def test_multi_word_expression_is_one_span():
    spans = _spans(build_space("a police car on a street", "synonym", source="wordnet"))
    assert {"patrol car", "squad car"} <= set(spans["police car"])
    # "fireplug" is WordNet's, but rare (never tagged in SemCor, no CLIP token): dropped, like "trigon" for "triangle"
    assert "fire hydrant" not in _spans(build_space("a fire hydrant on a street", "synonym", source="wordnet"))


def test_word_itself_and_repeats_are_dropped_and_per_word_respected():
    for source in ("auto", "wordnet", "thesaurus"):
        space = build_space("a happy dog running on the beach", "synonym", source=source, per_word=3)
        for span in space.positive:
            lowered = [c.lower() for c in span.choices]
            assert len(lowered) == len(set(lowered)) <= 4
            assert span.original.lower() not in lowered[1:]


def test_task_spaces():
    improve = build_task_space("a red car in the snow", "improve")
    names = [s.name for s in improve.negative]
    assert "red" in names and any(s.source == "nplib" for s in improve.negative)
    assert improve.positive == []
    with_positive = build_task_space("a red car in the snow", "improve", with_positive=True, space_kind="antonym")
    assert with_positive.positive and all(s.source != "nplib" for s in with_positive.negative)
    attack = build_task_space("a red car in the snow", "attack")
    assert attack.positive and attack.negative == []
    # the paper's three negative spaces: both (the default), the opposites only, the library only
    library = build_task_space("a red car in the snow", "improve", space_kind="library")
    assert library.negative and all(s.source == "nplib" for s in library.negative)
    assert [s for s in improve.negative if s.source == "nplib"] == library.negative
    antonym = build_task_space("a red car in the snow", "improve", space_kind="antonym")
    assert [s for s in improve.negative if s.source != "nplib"] == antonym.negative


def test_an_unknown_space_kind_is_refused_before_any_model_work():
    code, err = run_cli("improve", "a red car", "--space-kind", "opposites", "--model", "/nonexistent")
    assert code == 2 and "--space-kind 'opposites' is not known; use one of both, antonym, library" in " ".join(err.split())


def test_reference_round_trip():
    space = build_task_space("a red car in the snow", "improve", with_positive=True)
    data = to_reference(space)
    back = SearchSpace.from_dict(data)
    assert back.prompt == space.prompt and back.keywords == space.keywords
    assert _spans(back) == _spans(space)
    assert _slots(back) == {k: v for k, v in _slots(space).items() if not k.startswith("nplib:")}


def test_cache_hit_does_not_call_the_source(tmp_path, monkeypatch):
    first = build_space("a red car in the snow", "synonym", cache_dir=tmp_path / "c")
    assert len(list((tmp_path / "c").glob("*.json"))) == 1

    def boom(*a, **k):
        raise AssertionError("the source was called despite the cache")

    monkeypatch.setattr(build_module, "choices_per_word", boom)
    second = build_space("a red car in the snow", "synonym", cache_dir=tmp_path / "c")
    assert second.to_dict() == first.to_dict()
    with pytest.raises(AssertionError):  # other settings are another key
        build_space("a red car in the snow", "synonym", per_word=2, cache_dir=tmp_path / "c")


@pytest.mark.parametrize(
    "args, message",
    [
        (("", "synonym"), "empty"),
        (("   ", "antonym"), "empty"),
        (("a of the, and 42!", "synonym"), "no content words"),
        (("a red car", "opposite"), "Unknown space kind"),
        (("a red car", "synonym", "bing"), "space source 'bing' is not known"),
        (("a red car", "antonym", "thesaurus"), "no opposites"),
        (("a red car", "synonym", "embedding"), "text encoder"),
        (("a red car", "synonym", "llm"), "--llm-url"),
    ],
)
def test_bad_input(args, message):
    with pytest.raises(UsageError, match=message):
        build_space(*args)


def test_unknown_task():
    with pytest.raises(UsageError, match="--task .enhance. is not known"):
        build_task_space("a red car", "enhance")
